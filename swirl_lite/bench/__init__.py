"""Benchmarks: `swirl-lite bench tools|rollout|judge|train` (the click group is in `cli.py`).

    tools.py    calculator calls/s, BM25 build/load time, queries/s, supporting-paragraph recall
    rollout.py  the rollout engine at batch 1 vs batch B: tokens/s, trajectories/s, same turns
    judge.py    judge accuracy and steps/s per model and mode on labelled steps
    train.py    RL training samples/s and peak memory: judge shared vs separate, state shared vs per row
    learn.py    the learning check (`bench train --learn`): held-out reward before vs after RL
    settled.py  `bench train --settled`: the loss with a settled state vs none (and `medians_table`)
    sampling.py `bench train --sampling`: GRPO's sampling in one generate call vs one per state

Bench is the top layer: it may import stages (rollout takes generate's demonstrations, train and
learn run the train stage); nothing below it imports bench.
"""
