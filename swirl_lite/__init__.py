"""swirl-lite: Step-Wise Reinforcement Learning (SWiRL) for multi-step tool use on one GPU."""

__version__ = "0.1.0"
