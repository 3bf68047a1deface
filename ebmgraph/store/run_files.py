"""Names of the files in a run directory."""

GRAPH_FILE = "graph.yaml"
STEP_FILE = "step.py"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"
EVAL_LOG = "eval.jsonl"
EVAL_PNG = "eval_samples.png"
SAMPLES_DIR = "samples"
