"""A non-zero rank: joins the process groups, then executes the steps rank 0 broadcasts."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from reference_impl.engine.process_tree import die_with_parent


def main() -> int:
    die_with_parent()
    parser = argparse.ArgumentParser(prog="python -m reference_impl.engine.worker")
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--master-port", type=int, required=True)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    ns = parser.parse_args()
    argv = ns.argv[1:] if ns.argv[:1] == ["--"] else ns.argv
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format=f"[%(asctime)s rank{ns.rank} %(name)s] %(message)s")
    logger = logging.getLogger("reference_engine")
    from reference_impl.engine.cli import parse_config
    from reference_impl.engine.rank_setup import build_rank
    from reference_impl.engine.scheduler import needs_token_gather

    config = parse_config(argv)
    try:
        rank = build_rank(config, ns.rank, ns.master_port)
        while True:
            step = rank.comms.broadcast_object(None)
            if step.kind == "stop":
                break
            tokens = rank.runner.run_step(step)
            if needs_token_gather(step):
                rank.comms.gather_objects_to_rank0(tokens if rank.layout.index_in_group == 0 else None)
    except Exception:
        logger.error(f"Scheduler hit an exception: {traceback.format_exc()}")
        sys.stdout.flush()
        os._exit(1)
    rank.comms.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
