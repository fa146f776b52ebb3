"""``hepstream cloud`` (plan, run, status, simulate, the local job queue) and ``hepstream
submit`` (an HTCondor submit file): the operator's commands."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from hepstream.errors import ConfigError
from hepstream.jobspec import ShippedJob
from hepstream.report import write_json_atomic

app = typer.Typer(help="Operate the cloud scheduler shim.", no_args_is_help=True)
queue_app = typer.Typer(help="The embedded local job queue.", no_args_is_help=True)
app.add_typer(queue_app, name="queue")

ConfigOpt = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="HEPSTREAM_CLOUD_CONFIG",
        help="Cloud config TOML (tables shim, policy and one cloud table per cloud).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
_DEFAULT_CONFIG = Path("hepstream-cloud.toml")


def _config(path: Path):
    from hepstream.cloud.policy import load_config

    if not path.exists():
        raise ConfigError(
            f"cloud config {path} not found; write one (see docs/cloud.md) or pass --config"
        )
    return load_config(path)


def _action_dict(action) -> dict:

    return {"action": type(action).__name__.lower(), **asdict(action)}


@app.command("plan")
def plan_cmd(config: ConfigOpt = _DEFAULT_CONFIG, as_json: JsonOpt = False) -> None:
    """Dry run: show what the shim would do now, and why.

    \b
    Example:
        hepstream cloud plan -c hepstream-cloud.toml
    """
    from hepstream.cloud.shim import Shim

    shim = Shim.from_config(_config(config))
    _, actions = shim.plan()
    if as_json:
        typer.echo(json.dumps([_action_dict(a) for a in actions], indent=2))
        return
    if not actions:
        typer.echo("nothing to do")
    for a in actions:
        d = _action_dict(a)
        target = d.get("vm_id") or d.get("job_id") or ""
        where = d.get("cloud", "")
        typer.echo(f"{d['action']:8} {target} {where}: {d['reason']}".replace("  ", " "))


@app.command("run")
def run_cmd(
    config: ConfigOpt = _DEFAULT_CONFIG,
    once: Annotated[bool, typer.Option("--once", help="One round, then exit.")] = False,
    interval: Annotated[
        float | None, typer.Option("--interval", help="Seconds between rounds.")
    ] = None,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Exit when no job is left and no VM runs.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every action.")] = False,
) -> None:
    """Run the reconcile loop (SIGTERM stops it; VMs stay and are adopted on restart).

    \b
    Example:
        hepstream cloud run -c hepstream-cloud.toml --interval 30
    """
    from hepstream.cloud.shim import Shim

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    shim = Shim.from_config(_config(config))
    rounds = shim.run(interval=interval, once=once, until_idle=until_idle)
    typer.echo(f"hepstream cloud: {rounds} round(s)", err=True)


def status_dict(config) -> dict:
    """VMs per cloud and state, job counts, per-site rates from job reports."""
    from hepstream.cloud.queues.local import LocalQueue
    from hepstream.cloud.sitestats import per_site
    from hepstream.cloud.state import StateStore

    state = StateStore(config.state_path)
    queue = LocalQueue(config.state_path)
    vms: dict[str, dict[str, int]] = {c.name: {} for c in config.clouds}
    for row in state.live():
        per = vms.setdefault(row.cloud, {})
        per[row.last_state] = per.get(row.last_state, 0) + 1
    return {
        "shim_id": config.shim_id,
        "vms": vms,
        "quota": {c.name: c.quota for c in config.clouds},
        "jobs": queue.counts(),
        "boots": state.all_outcomes(),
        "sites": per_site(rep for _, _, rep in queue.reports()),
    }


@app.command("status")
def status_cmd(config: ConfigOpt = _DEFAULT_CONFIG, as_json: JsonOpt = False) -> None:
    """VMs per cloud and state, jobs, and events/s and KB/s per site from job reports.

    \b
    Example:
        hepstream cloud status -c hepstream-cloud.toml --json
    """
    data = status_dict(_config(config))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"shim {data['shim_id']}")
    for cloud, states in data["vms"].items():
        text = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "no VMs"
        typer.echo(f"  {cloud:12} {text} (quota {data['quota'].get(cloud, '?')})")
    typer.echo(
        "jobs: " + (", ".join(f"{n} {s}" for s, n in sorted(data["jobs"].items())) or "none")
    )
    for site, s in data["sites"].items():
        typer.echo(
            f"  site {site:12} {s['jobs']} jobs, {s['events_per_s_mean']:,.0f} ev/s and "
            f"{s['kb_per_s_mean']:,.0f} KB/s per job, {s['kb_per_s_sum']:,.0f} KB/s summed"
        )


@app.command("simulate")
def simulate_cmd(
    preset: Annotated[str, typer.Option(help="Cloud set when the config has none.")] = "paper",
    jobs: Annotated[
        int | None, typer.Option(help="Jobs to queue (default: the config's, else 1000).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Simulation TOML: policy, jobs and cloud tables with sim settings (docs/cloud.md).",
        ),
    ] = None,
    png: Annotated[
        Path | None, typer.Option(help="Write VMs starting/running/error over time here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Simulate clouds with boot delays and failures, driven by the real shim.

    \b
    Example:
        hepstream cloud simulate --preset paper --jobs 1000 --png vms.png --json
        hepstream cloud simulate --config examples/cloud-sim-20.toml --json
    """
    from hepstream.cloud.simconfig import SimConfig, load_sim_config, preset_clouds
    from hepstream.cloud.simulate import plot, run_config

    sim = load_sim_config(config, preset) if config else SimConfig(preset_clouds(preset))
    t0 = time.perf_counter()
    result = run_config(sim, seed=seed, jobs=jobs)
    result.summary["wall_s"] = round(time.perf_counter() - t0, 2)
    if png:
        plot(result, str(png))
        result.summary["png"] = str(png)
    if as_json:
        typer.echo(json.dumps(result.summary, indent=2))
        return
    for key, value in result.summary.items():
        typer.echo(f"{key:22} {value}")


@queue_app.command("add")
def queue_add(
    image: Annotated[str, typer.Option(help="VM image the job needs.")],
    config: ConfigOpt = _DEFAULT_CONFIG,
    owner: Annotated[str, typer.Option(help="Job owner; only their VMs run it.")] = "",
    cpus: Annotated[int, typer.Option(help="VM CPU cores.")] = 1,
    memory: Annotated[int, typer.Option(help="VM memory in MB.")] = 2048,
    target_cloud: Annotated[
        list[str] | None, typer.Option("--target-cloud", help="Allowed cloud (repeat).")
    ] = None,
    plugin: Annotated[str, typer.Option(help="Selection plugin path inside the image.")] = "",
    plugin_source: Annotated[
        Path | None, typer.Option(help="Plugin file to ship with the job instead.")
    ] = None,
    inputs: Annotated[list[str] | None, typer.Option("--input", help="Input URL (repeat).")] = None,
    output: Annotated[str, typer.Option(help="Output URL or path.")] = "",
    report: Annotated[str, typer.Option(help="Report URL or path.")] = "",
    count: Annotated[int, typer.Option(help="Queue this many copies.")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Queue job(s) in the local SQLite queue.

    \b
    Example:
        hepstream cloud queue add --image hepstream-test --plugin sel.py \\
            --input root://127.0.0.1//data/a.root --output out.parquet
    """
    from hepstream.cloud.model import VMSpec
    from hepstream.cloud.queues.local import LocalQueue

    cfg = _config(config)
    owner = owner or os.environ.get("USER", "nobody")
    queue = LocalQueue(cfg.state_path)
    mapping = {"inputs": list(inputs or []), "output": output, "report": report or None}
    if plugin_source is not None:
        try:
            mapping["plugin_source"] = plugin_source.read_text()
        except OSError as err:
            raise ConfigError(f"cannot read plugin {plugin_source}: {err.strerror}") from None
    else:
        mapping["plugin"] = plugin
    job = ShippedJob.from_mapping(mapping, where="cloud queue add")
    ids = [
        queue.add(VMSpec(image, cpus, memory, owner), job, tuple(target_cloud or ()))
        for _ in range(count)
    ]
    typer.echo(json.dumps(ids) if as_json else "\n".join(ids))


@queue_app.command("list")
def queue_list(
    config: ConfigOpt = _DEFAULT_CONFIG,
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List queued jobs.

    \b
    Example:
        hepstream cloud queue list --status idle --json
    """
    from hepstream.cloud.queues.local import LocalQueue

    queue = LocalQueue(_config(config).state_path)
    rows = queue.list(status)
    if as_json:
        out = [
            {
                "id": q.job.id,
                "status": q.job.status,
                "image": q.job.spec.image,
                "owner": q.job.spec.owner,
                "vm": q.job.vm_id,
                "attempts": q.attempts,
                "error": q.error,
                "job": q.spec,
            }
            for q in rows
        ]
        typer.echo(json.dumps(out, indent=2))
        return
    for q in rows:
        typer.echo(
            f"{q.job.id} {q.job.status:8} {q.job.spec.image} {q.job.spec.owner} "
            f"{q.job.vm_id or '-'}" + (f" ({q.error})" if q.error else "")
        )


def submit(
    plugin: Annotated[str, typer.Argument(help="Selection plugin file (inside the VM image).")],
    inputs: Annotated[list[str], typer.Argument(help="Input URLs; one Condor job each.")],
    image: Annotated[str, typer.Option(help="VM image the jobs need (+VMType).")],
    output_dir: Annotated[str, typer.Option("--output-dir", help="Where outputs go.")] = "out",
    cpus: Annotated[int, typer.Option(help="VM CPU cores (+VMCPUCores).")] = 1,
    memory: Annotated[int, typer.Option(help="VM memory in MB (+VMMem).")] = 2048,
    target_cloud: Annotated[
        list[str] | None, typer.Option("--target-cloud", help="Allowed cloud (repeat).")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write an HTCondor submit file whose jobs ask the shim for a VM.

    \b
    Example:
        hepstream submit myselection.py root://host//data/a.root root://host//data/b.root \\
            --image babar-sl55 --memory 2048 --target-cloud nrc -f tau1n.sub
        condor_submit tau1n.sub
    """

    from hepstream.cloud.submit import submit_text

    text = submit_text(
        plugin,
        list(inputs),
        image,
        output_dir,
        cpus,
        memory,
        target_cloud,
        owner=os.environ.get("USER"),
    )
    if file is None:
        typer.echo(text, nl=False)
        return

    write_json_atomic(file, text)  # temp + rename, whatever the content
