"""The model behind the console end-to-end test: the conformance suite's scriptable fake of
the Anthropic Messages API (exact streaming wire format), with the replies of one scripted
turn queued up front.

    python3 e2e/console/fake_model_main.py PORT

The turn: the model first asks to run `bash` (the agent's policy makes oma ask the user),
then, after the tool result, answers in text. A second session's turn calls a custom tool,
which the user answers from the page, then a reply that stalls until the user interrupts. Usage is reported large enough that the
session's list cost is visible in cents.
"""

import os
import signal
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "conformance"))

from fake_model import FakeModel, Reply  # noqa: E402

COMMAND = "echo hello-from-the-console"
USAGE = {"input_tokens": 100_000, "output_tokens": 20_000}


def main() -> None:
    fake = FakeModel(int(sys.argv[1]))
    fake.push(
        Reply(text="I will run a command.", tool_uses=[("bash", {"command": COMMAND})], usage=USAGE),
        Reply(text="The command printed hello-from-the-console.", usage=USAGE),
        # The second session's turn: a custom tool the page answers.
        Reply(tool_uses=[("lookup_order", {"order": "A-17"})]),
        Reply(text="Order A-17 has shipped."),
        # Then a reply that stalls after its first words until the user interrupts it.
        Reply(text="Working on it, slowly and carefully.", gate=threading.Event()),
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print("fake model ready", flush=True)
    done.wait()
    fake.stop()


if __name__ == "__main__":
    main()
