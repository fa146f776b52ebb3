"""``hepstream image``: build, derive, boot, benchmark, push and pull VM images."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from hepstream.errors import ConfigError
from vmimage.bench import compare
from vmimage.build import build_image
from vmimage.config import BuildConfig
from vmimage.derive import derive_image
from vmimage.qemu import KernelBoot, start_vm
from vmimage.repo import list_images
from vmimage.repo import pull as do_pull
from vmimage.repo import push as do_push

app = typer.Typer(
    help="Build, derive, push and pull VM images.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _emit(data: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        for line in lines:
            print(line)


@app.command()
def build(
    source: Annotated[
        Path, typer.Option("--source", help="hepstream project directory to bake in.")
    ] = Path("."),
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Copy the image here.")
    ] = None,
    compress: Annotated[bool, typer.Option("--compress", help="Compressed qcow2.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Build the bootable qcow2 of SOURCE (root, Debian; layers cached in $HEPSTREAM_CACHE).

    \b
    Example:
      sudo hepstream image build --source . -o hepstream.qcow2
      hepstream image build --json   # prints size, build time and per-step times
    """
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("building image") as status:
        res = build_image(
            source.resolve(),
            BuildConfig(compress=compress),
            output,
            progress=lambda step: status.update(f"image build: {step}"),
        )
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in res.steps.items())
    _emit(
        res.asdict(),
        as_json,
        [
            f"image      {res.image}",
            f"size       {_mib(res.size_bytes)} (virtual {_mib(res.virtual_size_bytes)})",
            f"build time {res.build_s:.1f} s ({steps})",
            "cached     " + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in res.cached.items()),
        ],
    )


@app.command()
def derive(
    base: Annotated[Path, typer.Argument(help="Base qcow2 image.")],
    plugin: Annotated[
        list[Path], typer.Option("--plugin", "-p", help="Plugin file(s) to put in the image.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Overlay to create.")] = Path(
        "user.qcow2"
    ),
    conditions: Annotated[
        list[Path] | None,
        typer.Option(
            "--conditions",
            help="Conditions snapshot dir(s) to carry, in /opt/hepstream/conditions.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a small qcow2 overlay of BASE holding the user's plugins in /opt/hepstream/user.

    \b
    Example:
      hepstream image derive hepstream.qcow2 --plugin myselection.py -o user.qcow2
      # job spec then says: plugin: /opt/hepstream/user/myselection.py
      hepstream image derive hepstream.qcow2 -p calib.py --conditions beam-v1 -o user.qcow2
      # jobs then run with --conditions /opt/hepstream/conditions/beam-v1
    """

    res = derive_image(base, plugin, output, conditions=conditions)
    _emit(
        res.asdict(),
        as_json,
        [
            f"overlay {res.image}: {_mib(res.size_bytes)} (base {res.base}: "
            f"{_mib(res.base_size_bytes)})",
            f"plugins {', '.join(res.plugins)}",
            f"time    {res.derive_s:.1f} s",
        ],
    )


@app.command()
def boot(
    image: Annotated[Path, typer.Argument(help="qcow2 image to boot.")],
    job: Annotated[Path, typer.Option("--job", help="Job spec JSON/YAML (the hepstream: map).")],
    forward: Annotated[
        list[str] | None,
        typer.Option("--forward", help="GUEST_PORT:HOST_PORT, guest dials 10.0.2.100."),
    ] = None,
    workdir: Annotated[Path, typer.Option("--workdir", help="Seed and logs.")] = Path("vm-run"),
    memory: Annotated[int, typer.Option("--memory", help="MiB of guest memory.")] = 2048,
    cpus: Annotated[int, typer.Option("--cpus", help="Guest CPUs.")] = 1,
    direct_kernel: Annotated[
        bool, typer.Option("--direct-kernel", help="Skip BIOS+GRUB: -kernel/-initrd.")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds before giving up.")] = 1200,
    as_json: JsonOpt = False,
) -> None:
    """Boot IMAGE under QEMU (TCG) with a job, wait for its agent to power off.

    \b
    Example:
      hepstream image boot hepstream.qcow2 --job job.json --forward 1094:1094
    """

    from vmimage.agent import parse_user_data

    spec = parse_user_data(job.read_text())
    spec = spec.get("hepstream", spec)
    fwd = {}
    for item in forward or []:
        g, _, h = item.partition(":")
        if not (g.isdigit() and h.isdigit()):
            raise ConfigError(f"--forward {item!r} must be GUEST_PORT:HOST_PORT")
        fwd[int(g)] = int(h)
    kernel = KernelBoot.for_image(image) if direct_kernel else None
    t0 = time.monotonic()
    vm = start_vm(
        image, job=spec, workdir=workdir, memory_mb=memory, cpus=cpus, forwards=fwd, kernel=kernel
    )
    try:
        vm.wait(timeout)
    except subprocess.TimeoutExpired:
        vm.terminate()
    status = vm.agent_status() or "no-status"
    data = {
        "status": status,
        "seconds": round(time.monotonic() - t0, 1),
        "results": vm.agent_results(),
        "serial_log": str(vm.serial_log),
    }
    _emit(data, as_json, [f"status {status} in {data['seconds']} s; serial log {vm.serial_log}"])
    if status != "ok":
        raise typer.Exit(1)


@app.command()
def bench(
    image: Annotated[
        Path | None, typer.Option("--image", help="Image (default: build one).")
    ] = None,
    events: Annotated[int, typer.Option("--events", help="Events in the sample.")] = 20_000,
    direct_kernel: Annotated[bool, typer.Option("--direct-kernel")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run examples/tau1n.py natively and in the VM on the same root:// file; compare events/s.

    Under TCG the ratio measures CPU emulation, not virtualisation overhead.

    \b
    Example:
      hepstream image bench --events 20000 --json
    """

    res = compare(image=image, n_events=events, direct_kernel=direct_kernel)
    _emit(
        res,
        as_json,
        [
            f"native  {res['native_events_per_s']:.0f} events/s",
            f"vm      {res['vm_events_per_s']:.0f} events/s (TCG emulation)",
            f"ratio   {res['ratio']:.3f}; boot to agent {res['boot_s']:.1f} s; "
            f"VM total {res['vm_total_s']:.1f} s; outputs equal: {res['outputs_equal']}",
        ],
    )


@app.command()
def push(
    image: Annotated[Path, typer.Argument(help="qcow2 image or overlay.")],
    repo: Annotated[str, typer.Argument(help="Repository: directory or root://host:port//path.")],
    name: Annotated[str, typer.Option("--name", help="Image name.")] = "hepstream",
    version: Annotated[str, typer.Option("--version", help="Image version.")] = "latest",
    as_json: JsonOpt = False,
) -> None:
    """Upload IMAGE (and an overlay's base) to REPO by sha256 and write its manifest.

    \b
    Example:
      hepstream image push user.qcow2 root://127.0.0.1:1094//out/images --name tau1n --version 1
    """

    res = do_push(image, repo, name, version)
    data = {
        **asdict(res.manifest),
        "uploaded": res.uploaded,
        "skipped": res.skipped,
        "seconds": round(res.seconds, 2),
    }
    _emit(
        data,
        as_json,
        [
            f"pushed {name}:{version} sha256:{res.manifest.digest[:12]} "
            f"({len(res.uploaded)} blob(s) sent, {len(res.skipped)} present)"
        ],
    )


@app.command()
def pull(
    repo: Annotated[str, typer.Argument(help="Repository: directory or root:// URL.")],
    ref: Annotated[str, typer.Argument(help="NAME[:VERSION]")],
    dest: Annotated[Path, typer.Option("--dest", help="Site image directory.")] = Path("images"),
    cache: Annotated[
        str | None,
        typer.Option(
            help="The site's cache, root://host:port: blobs come through it (default: "
            "$HEPSTREAM_SITE_CACHE). The manifest is always read at REPO."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch NAME[:VERSION] (and its base) into DEST, checking digests; skip blobs DEST has.

    \b
    Example:
      hepstream image pull root://127.0.0.1:1094//data/images tau1n:1 --dest /var/lib/images \\
          --cache root://127.0.0.1:1095
    """

    res = do_pull(repo, ref, dest, cache=cache or os.environ.get("HEPSTREAM_SITE_CACHE") or None)
    data = {
        "image": str(res.image),
        "manifest": asdict(res.manifest),
        "downloaded": res.downloaded,
        "skipped": res.skipped,
        "downloaded_bytes": res.downloaded_bytes,
        "skipped_bytes": res.skipped_bytes,
        "seconds": round(res.seconds, 2),
    }
    _emit(
        data,
        as_json,
        [
            f"{res.image} ({len(res.downloaded)} downloaded, {res.downloaded_bytes / 1e6:.1f} MB; "
            f"{len(res.skipped)} already here)"
        ],
    )


@app.command("list")
def list_cmd(
    repo: Annotated[str, typer.Argument(help="Repository: directory or root:// URL.")],
    as_json: JsonOpt = False,
) -> None:
    """List the images in REPO.

    \b
    Example:
      hepstream image list ./repo
    """

    items = list_images(repo)
    _emit(
        {"images": [asdict(m) for m in items]},
        as_json,
        [
            f"{m.name}:{m.version}  sha256:{m.digest[:12]}  {_mib(m.size)}  "
            f"{'overlay of ' + m.base[:12] if m.base else 'base'}  {m.created}"
            for m in items
        ],
    )
