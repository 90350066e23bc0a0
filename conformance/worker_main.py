"""Runs the official SDK's `EnvironmentWorker` (anthropic.lib.environments) against oma, as a
user of a self-hosted environment would: `python worker_main.py ENV_ID ENV_KEY WORKDIR`.

The conformance tests start it as a process of its own, so they can kill it like a real
worker machine dies. `OMA_WORKER_MAX_IDLE` sets how long it stays with a session after the
session's turn ended (the SDK default is 60 s).
"""

import asyncio
import logging
import os
import sys

import anthropic


async def main() -> None:
    environment_id, environment_key, workdir = sys.argv[1:4]
    client = anthropic.AsyncAnthropic(
        api_key="unused-the-worker-authenticates-with-the-environment-key",
        base_url=os.environ["OMA_BASE_URL"],
        _strict_response_validation=True,
    )
    worker = client.beta.environments.work.worker(
        environment_id=environment_id,
        environment_key=environment_key,
        workdir=workdir,
        max_idle=float(os.environ.get("OMA_WORKER_MAX_IDLE", "60")),
        worker_id=os.environ.get("OMA_WORKER_ID"),
    )
    await worker.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main())
