"""`tuimeter simulate`: a simulated meter on a pseudo-terminal, until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

from tuimeter.exitcodes import ExitCode
from tuimeter.options import SimulateOptions
from tuimeter.sim.faults import FaultPlan
from tuimeter.sim.mcu import SimulatedMeter
from tuimeter.sim.pty_server import PtyMeterServer


async def _serve(args: SimulateOptions) -> int:
    loop = asyncio.get_running_loop()
    faults = args.faults if isinstance(args.faults, FaultPlan) else None
    meter = SimulatedMeter(seed=args.seed, period=args.period, speed=args.speed, start=loop.time(),
                           faults=faults, variant=args.variant)
    server = PtyMeterServer(meter, link=args.link, seed=args.seed)
    try:
        await server.start()
    except OSError as exc:
        print(f"tuimeter simulate: cannot create {args.link}: {exc.strerror}; pick a path in a folder you can write",
              file=sys.stderr)
        return ExitCode.USAGE
    print(server.path, flush=True)
    if args.link:
        print(f"linked as {args.link}", file=sys.stderr, flush=True)
    print(f"simulated meter ready: run 'tuimeter {server.port}' (Ctrl+C stops)", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()
    return ExitCode.OK


def run_simulate(args: SimulateOptions) -> int:
    return asyncio.run(_serve(args))
