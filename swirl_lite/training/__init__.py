"""The train stage's parts: data (states, order), reward (judge as TRL reward), rl (GRPO), sft,
common (config mapping, resume, saving). The stage is stages/train.py; the learning check is
bench/learn.py."""
