"""Notebook widgets. Each keeps its logic in a plain class, tested without a browser, and a thin ipywidgets view."""

from igpt.widgets.kl_dashboard import KLDashboard, kl_dashboard, static_figures
from igpt.widgets.ranking import FLAGS, RankingSession, RankingWidget, ranking_widget
from igpt.widgets.reward_explorer import RewardExplorer, reward_explorer, score_rankings
from igpt.widgets.sample_compare import SampleComparison, sample_comparison

__all__ = ["FLAGS", "RankingSession", "RankingWidget", "ranking_widget",
           "KLDashboard", "kl_dashboard", "static_figures",
           "RewardExplorer", "reward_explorer", "score_rankings",
           "SampleComparison", "sample_comparison"]
