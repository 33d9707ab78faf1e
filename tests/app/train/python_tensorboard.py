"""Reads a run's TensorBoard event files with TensorBoard's own reader and prints every scalar
as `TAG STEP VALUE`, one per line. usage: python_tensorboard.py RUN_DIR"""
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1] + "/tensorboard", size_guidance={"scalars": 0})
acc.Reload()
tags = acc.Tags()["scalars"]
if "train/loss" not in tags:
    sys.exit(f"no train/loss scalars; tags: {tags}")
for tag in tags:
    for event in acc.Scalars(tag):
        print(tag, event.step, repr(event.value))
