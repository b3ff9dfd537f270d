"""The train stage's parts: data (states, order), reward (judge as TRL reward), rl (GRPO), sft,
common (config mapping, resume, saving), learn (the learning check). The stage is stages/train.py."""
