"""igpt: InstructGPT (Ouyang et al. 2022) end to end, small enough to run and read on a laptop.

Stages, each one module with one entry point, talking only through the run folder:
    world.build -> data.build -> pretrain.train -> sft.train -> reward.train -> ppo.train -> evaluate.run
"""

from igpt.config import RunConfig, load_config
from igpt.errors import ConfigError, DataError, IgptError, StageError

__version__ = "0.1.0"
__all__ = ["RunConfig", "load_config", "ConfigError", "DataError", "IgptError", "StageError", "__version__"]
