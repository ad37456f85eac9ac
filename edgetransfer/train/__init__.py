"""Training shared by finetune and distill: the Trainer run and its output folder, checkpoints,
guards, progress, tuning methods (full, LoRA, head), losses, devices."""
