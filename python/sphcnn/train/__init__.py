"""Training of any task (:mod:`sphcnn.tasks`): the functional step, optimizers
and schedules, the loop with checkpoints and resume, data parallelism over
devices and hosts, configs, metrics and TensorBoard files."""
