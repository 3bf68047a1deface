"""``ebmgraph run | check | compile | nodes | sample``."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from ebmgraph.errors import DataError, DivergenceError, GraphError, NodeError

EXIT_BAD_INPUT, EXIT_NODE_FAILED, EXIT_DIVERGED = 2, 1, 3


def _graph_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="graph file (YAML)")
    parser.add_argument("--profile", help="named override set from the file's 'profiles' (default: 'default')")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any value, e.g. --set train.steps=100 (repeatable)")


def _load(args):
    from ebmgraph.engine.load import load_graph

    overrides = list(args.overrides)
    if getattr(args, "steps", None) is not None:
        overrides.append(f"train.steps={args.steps}")
    if getattr(args, "threads", None) is not None:
        overrides.append(f"train.threads={args.threads}")
    return load_graph(args.file, args.profile, tuple(overrides), tuple(args.plugins))


def command_run(args) -> int:
    from ebmgraph.runs.distributed import launch, world_from_environment

    world = world_from_environment()
    if args.nproc > 1 and world.world_size == 1:
        return launch(_without_nproc(args.argv), args.nproc)
    return _run_in(world, args)


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line with its ``--nproc N`` (or ``--nproc=N``) taken out, for the workers."""
    out, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--nproc="):
            skip = False
            continue
        skip = arg == "--nproc"
        if not skip:
            out.append(arg)
    return out


def _run_in(world, args) -> int:
    """``ebmgraph run`` in this process: alone, or as one rank of a torchrun world."""
    from ebmgraph.engine.load import load_graph
    from ebmgraph.runs.distributed import process_group, rank_device, shared_choice
    from ebmgraph.runs.run_dir import refuse_other_graph, require_checkpoint
    from ebmgraph.runs.runner import Runner, new_run_dir
    from ebmgraph.store.run_files import GRAPH_FILE

    resume_step = None
    if args.resume:
        run_dir, resume_step = _run_at_step(args.resume)
        if args.profile or args.file:
            raise SystemExit("ebmgraph run --resume: the run continues with its own resolved graph "
                             f"({run_dir / GRAPH_FILE}); give no FILE or --profile (use --set to change it)")
        require_checkpoint(run_dir)
        overrides = tuple(args.overrides) + ((f"train.steps={args.steps}",) if args.steps is not None else ())
        overrides += (f"train.threads={args.threads}",) if args.threads is not None else ()
        spec = load_graph(run_dir / GRAPH_FILE, None, overrides, tuple(args.plugins))
    else:
        if args.file is None:
            raise SystemExit("ebmgraph run: give a graph FILE, or --resume RUN_DIR")
        spec = _load(args)
        run_dir = Path(args.out) if args.out else new_run_dir(spec.train.out, spec.name)
        refuse_other_graph(run_dir, spec)
    device = rank_device(args.device or spec.train.device, world)
    with process_group(world, device):
        run_dir = shared_choice(run_dir, world)  # the directory rank 0's clock named
        runner = Runner(spec, run_dir, device, resume_step, world)
        if world.leader:
            print(f"run directory: {run_dir}" + (f" ({world.world_size} processes)" if world.world_size > 1 else ""),
                  file=sys.stderr)
        completed = runner.run()
    if not world.leader:
        return 0
    if completed == runner.started_at:
        print(f"nothing trained: {run_dir} already holds step {completed} and train.steps is {spec.train.steps}; "
              f"to train further: ebmgraph run --resume {run_dir} --steps N (N > {completed})", file=sys.stderr)
    else:
        print(f"finished {completed} steps ({completed - runner.started_at} trained now): {run_dir}",
              file=sys.stderr)
    return 0


def _run_at_step(text: str) -> tuple[Path, int | None]:
    """RUN_DIR or RUN_DIR@STEP (resume from the kept checkpoint of STEP)."""
    run, at, step = text.rpartition("@")
    if at and step.isdigit():
        return Path(run), int(step)
    return Path(text), None


def command_check(args) -> int:
    from ebmgraph.engine.check import check_graph
    from ebmgraph.engine.describe import describe_plan
    from ebmgraph.eval.requirements import check_evaluation

    plan = check_graph(_load(args))
    check_evaluation(plan)
    print(describe_plan(plan))
    return 0


def command_compile(args) -> int:
    from ebmgraph.engine.check import check_graph
    from ebmgraph.engine.codegen import generate

    print(generate(check_graph(_load(args))).text, end="")
    return 0


def command_nodes(args) -> int:
    from ebmgraph.nodes.reference import markdown_reference, text_reference

    print(markdown_reference() if args.markdown else text_reference(), end="")
    return 0


def _weighted_run(text: str) -> tuple[Path, float]:
    """RUN_DIR or RUN_DIR:WEIGHT."""
    run, colon, weight = text.rpartition(":")
    try:
        return (Path(run), float(weight)) if colon else (Path(text), 1.0)
    except ValueError:
        return Path(text), 1.0


def command_sample(args) -> int:
    from ebmgraph.runs.run_dir import sample_run

    runs = ([(Path(args.run_dir), 1.0)] if args.run_dir else []) + [_weighted_run(e) for e in args.energies]
    if not runs:
        raise SystemExit("ebmgraph sample: give a RUN_DIR, or --energy RUN_DIR[:WEIGHT] (repeatable)")
    (first, weight), others = runs[0], runs[1:]
    paths = sample_run(first, n=args.n, steps=args.steps, out=args.out, device=args.device,
                       trajectory=args.trajectory, weight=weight, compose=others)
    print("\n".join(map(str, paths)))
    return 0


def command_draw(args) -> int:
    from ebmgraph.engine.check import check_graph
    from ebmgraph.viz.drawing import draw

    print(draw(check_graph(_load(args)), args.output), end="")
    return 0


def command_report(args) -> int:
    from ebmgraph.viz.report import write_report

    print(write_report(Path(args.run_dir), args.output))
    return 0


def command_eval(args) -> int:
    import json

    from ebmgraph.runs.run_dir import evaluate_run

    record = evaluate_run(Path(args.run_dir), n=args.n, device=args.device)
    print(json.dumps(record, indent=2))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="ebmgraph", description="EBM training algorithms as dataflow graphs.")
    root.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="MODULE_OR_FILE",
                      help="import a module or .py file that registers node and model types (runs that code; "
                           "repeatable); a run records its plugins")
    root.add_argument("--debug", action="store_true", help="print the full traceback of an error")
    sub = root.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train a graph")
    run.add_argument("file", nargs="?", help="graph file (YAML); not needed with --resume")
    run.add_argument("--profile", help="named override set from the file's 'profiles' (default: 'default')")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override any value, e.g. --set train.steps=100 (repeatable)")
    run.add_argument("--steps", type=int, help="total number of steps (overrides train.steps)")
    run.add_argument("--out", help="run directory (default: train.out/NAME-TIMESTAMP)")
    run.add_argument("--resume", metavar="RUN_DIR[@STEP]",
                     help="continue a run exactly from its last checkpoint, or from its kept checkpoint of STEP "
                          "(the later checkpoints are removed: the run continues from there)")
    run.add_argument("--device", help="torch device (overrides train.device)")
    run.add_argument("--threads", type=int, help="intra-op CPU threads (overrides train.threads; default: half the "
                                                 "cores, so that a second run fits beside it)")
    run.add_argument("--nproc", type=int, default=1, metavar="N",
                     help="train data-parallel in N processes on this machine, started through torchrun (the "
                          "graph's batch is the global batch; docs/distributed.md)")
    run.set_defaults(handler=command_run)

    check = sub.add_parser("check", help="check a graph; print kernels, node order and parameter counts")
    _graph_arguments(check)
    check.set_defaults(handler=command_check)

    compile_ = sub.add_parser("compile", help="print the generated Python source of the training step")
    _graph_arguments(compile_)
    compile_.set_defaults(handler=command_compile)

    draw = sub.add_parser("draw", help="draw the dataflow: a text tree, or a picture with -o")
    _graph_arguments(draw)
    draw.add_argument("-o", "--output", help="out.svg | out.png | out.mmd (Mermaid) | out.dot (Graphviz)")
    draw.set_defaults(handler=command_draw)

    report = sub.add_parser("report", help="one self-contained HTML report of a run (and PNG plots)")
    report.add_argument("run_dir")
    report.add_argument("-o", "--output", help="HTML path (default: RUN_DIR/report.html)")
    report.set_defaults(handler=command_report)

    nodes = sub.add_parser("nodes", help="list every node, model and optimizer type")
    nodes.add_argument("--markdown", action="store_true", help="print the reference as Markdown (docs/nodes.md)")
    nodes.set_defaults(handler=command_nodes)

    sample = sub.add_parser("sample", help="draw fresh chains from a trained run's energy; write a PNG")
    sample.add_argument("run_dir", nargs="?", help="the run whose energy, kernel and initial states are used")
    sample.add_argument("--energy", dest="energies", action="append", default=[], metavar="RUN_DIR[:WEIGHT]",
                        help="add WEIGHT (default 1) times this run's energy: the chains sample the weighted sum "
                             "of the energies (a product of experts) with the first run's kernel (repeatable)")
    sample.add_argument("--n", type=int, default=64, help="number of chains (default: 64)")
    sample.add_argument("--steps", type=int, help="Langevin steps (default: eval.steps or the kernel's)")
    sample.add_argument("--out", help="PNG path (default: RUN_DIR/samples/fresh_<K>steps.png)")
    sample.add_argument("--device", help="torch device")
    sample.add_argument("--trajectory", action="store_true",
                        help="also save a strip of the chains over their steps with their energy profile")
    sample.set_defaults(handler=command_sample)

    evaluate = sub.add_parser("eval", help="evaluate a trained run as its graph's eval section says; "
                                           "write eval.json and eval_samples.png")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--n", type=int, help="number of evaluation samples (default: eval.n)")
    evaluate.add_argument("--device", help="torch device")
    evaluate.set_defaults(handler=command_eval)
    return root


def _import_plugins(entries: list[str]) -> None:
    """Plugins given with --plugin, imported before any command (so every graph may use them)."""
    from ebmgraph.engine.plugins import PluginError, import_plugin

    for entry in entries:
        try:
            import_plugin(str(Path(entry).resolve()) if entry.endswith(".py") else entry)
        except PluginError as error:
            raise DataError(f"--plugin {entry}: {error}") from error


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv
    try:
        _import_plugins(args.plugins)
        return args.handler(args)
    except (GraphError, DataError, NodeError, DivergenceError) as error:
        if args.debug:
            traceback.print_exception(error.__cause__ or error, file=sys.stderr)
        return _report(error)
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stdout = None  # output was cut short by a closed pipe (e.g. `| head`): nothing more to say
        return 0


_EXITS = ((GraphError, "{}", EXIT_BAD_INPUT), (DataError, "error: {}", EXIT_BAD_INPUT),
          (NodeError, "error: {}", EXIT_NODE_FAILED), (DivergenceError, "diverged: {}", EXIT_DIVERGED))


def _report(error: Exception) -> int:
    """Print ``error`` as the command's last word; return the exit code for its kind."""
    form, code = next((form, code) for kind, form, code in _EXITS if isinstance(error, kind))
    print(form.format(error), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
