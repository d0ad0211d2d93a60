"""Print a run's headline numbers as markdown, read from its summaries (nothing typed by hand):

    python docs/experiments/summarize_run.py runs/tiny

Used for the tables in docs/experiments/2026-12-06-mini-world.md.
"""

import json
import sys
from pathlib import Path


def load(path: Path):
    return json.loads(path.read_text()) if path.is_file() else {}


def ci(d, pct=False):
    f = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:+.3f}")
    return f"{f(d['mean'] if 'mean' in d else d['value'])} [{f(d['ci95'][0])}, {f(d['ci95'][1])}]"


def main(run: Path) -> None:
    ranked, rm, probe = load(run / "data/rankings/summary.json"), load(run / "rm/summary.json"), load(run / "rm/probe.json")
    res = load(run / "eval/results.json")
    print(f"run: {run}  (config {res.get('config_hash', '?')}, seeds {res.get('seeds')})\n")
    if ranked:
        print(f"- rankings: agreement of two training labelers {100 * ranked['agreement_train_panel']['share']:.1f}% "
              f"({ranked['agreement_train_panel']['pairs']} pairs), training vs held-out "
              f"{100 * ranked['agreement_train_vs_heldout']['share']:.1f}%; ranked best by source "
              f"{ranked.get('ranked_best_by_source')} of {ranked.get('candidates_by_source')}")
    if rm:
        print(f"- RM: held-out accuracy {100 * rm['accuracy']['heldout_panel']:.1f}% (ceiling "
              f"{100 * rm['ceiling']['same_items']:.1f}%); failure checks "
              + ", ".join(f"{k} {100 * v['rm']:.0f}%" for k, v in rm["failure_checks"].items()))
    if probe:
        print(f"- probe: SFT greedy {probe['sft_greedy']:.3f}; RM best-of-n " + ", ".join(
            f"n={b['n']} {b['rm_pick']:.3f}" for b in probe["best_of_n"]) + f"; gold best-of-{probe['n']} "
            f"{probe['best_of_n'][-1]['gold_pick']:.3f}; best-of-{probe['n']} − greedy {ci(probe['bon_minus_greedy'])}, "
            f"− mean sample {ci(probe['bon_minus_mean'])}; prompt swap {100 * probe['prompt_swap']['share']:.1f}%, "
            f"entity swap {100 * probe['entity_swap']['share']:.1f}%; shortcuts length "
            f"{100 * probe['shortcuts']['length']:.1f}%, fact count {100 * probe['shortcuts']['claim_count']:.1f}%; "
            f"SFT samples attempt {100 * probe['sft_samples']['attempted']:.1f}%, name the subject "
            f"{100 * probe['sft_samples']['names_subject']:.1f}%")
    if res:
        recs = {(r["policy"], r["metric"]): r for r in res["records"]}
        print("\n| policy | greedy gold | − SFT | sampled gold | win rate vs SFT (held-out) | (training panel) | "
              "closed-domain hallucination | closed-domain helpful | web loss |")
        print("|---|---|---|---|---|---|---|---|---|")
        for p in res["policies"]:
            def v(m, pct=False, with_ci=False):
                r = recs.get((p, m))
                if r is None or r["value"] is None:
                    return "–"
                if with_ci and r["ci95"]:
                    return ci(r, pct)
                return f"{100 * r['value']:.1f}%" if pct else f"{r['value']:.3f}"
            print(f"| {p} | {v('gold')} | {v('gold_minus_sft', with_ci=True)} | {v('gold_sampled')} | "
                  f"{v('win_rate_vs_sft/heldout', True, True)} | {v('win_rate_vs_sft/train', True)} | "
                  f"{v('hallucination_closed', True)} | {v('helpful_closed')} | {v('pretrain_val_loss')} |")
        print("\n| gate | ours | met |\n|---|---|---|")
        for t in res["targets"]:
            met = {True: "yes", False: "**no**", None: "not measurable"}[t["met"]]
            print(f"| {t['target']} | {t['ours']} | {met} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/tiny"))
