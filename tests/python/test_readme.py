"""The README's "Try it" block, run as written: the commands a newcomer pastes after `make run`.

The gateway runs configs/example.toml on a store set up as scripts/run-example.sh sets it up
(the fixtures with their manifests, the `champion` alias on mlp:2), on ports of its own; the
only changes to the commands are those ports, the store directory and the binary's path, which
`make run` fixes and a test cannot. Every command must exit 0 and print an answer, not an error.
"""

import json
import os
import re
import subprocess

from conftest import MANIFESTS, MODELS, REGISTRATIONS, REPO, register, run_cli, start_server, stop_server, switchyard_bin


def try_it_block() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Try it", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_the_try_it_commands_run_as_written(tmp_path):
    store = tmp_path / "example-store"
    for model, stem, manifest in REGISTRATIONS:
        register(store, model, MODELS / f"{stem}.onnx", MANIFESTS / f"{manifest}.toml")
    run_cli("models", "alias", "--store", str(store), "mlp:2", "champion")
    example = (REPO / "configs" / "example.toml").read_text()
    config = tmp_path / "example.toml"
    config.write_text(
        re.sub(r'(?m)^path = ".*"$', f'path = "{store}"', example)
        .replace('listen = "127.0.0.1:8000"', 'listen = "127.0.0.1:0"')
        .replace('admin_listen = "127.0.0.1:8001"', 'admin_listen = "127.0.0.1:0"')
    )
    server = start_server(config, store, tmp_path / "serve.log")
    try:
        public, admin = server.public.removeprefix("http://"), server.admin.removeprefix("http://")
        env = dict(os.environ, SWITCHYARD_ADMIN_URL=server.admin, NO_COLOR="1")
        outputs = []
        for line in try_it_block():
            command = (
                line.replace("localhost:8000", public)
                .replace("localhost:8001", admin)
                .replace(".cache/example-store", str(store))
                .replace("target/release/switchyard", str(switchyard_bin()))
            )
            done = subprocess.run(["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"{line}\n{done.stderr}"
            assert done.stdout.strip(), f"{line}: printed nothing"
            try:
                answer = json.loads(done.stdout)
            except ValueError:
                answer = None  # text: Prometheus exposition, a table for people
            assert not (isinstance(answer, dict) and "error" in answer), f"{line}: {done.stdout[:500]}"
            outputs.append(done.stdout)
        answers = [json.loads(o) for o in outputs if o.lstrip().startswith('{"model_name"')]
        versions = [a["model_version"] for a in answers]
        assert versions[1:3] == ["3", "2"], f"pinned by number, then by alias: {versions}"
    finally:
        assert stop_server(server) == 0
