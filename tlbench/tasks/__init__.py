"""Tasks: what a dataset's examples ask of a model — a class per example (classification), boxes
and classes (detection), a class per pixel (segmentation) — and how it is scored. One module per
task; :mod:`tlbench.tasks.task` holds the contract and the registry."""
