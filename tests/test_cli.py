import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from radreport.config import load_run_config
from radreport.config_loading import ConfigError
from tests.another_user import locked_folder, raised_as_another_user

REPO = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ("torch", "transformers", "unsloth", "zenml", "mlflow", "pandas")
SUBCOMMANDS = ("setup", "demo", "data", "baselines", "train", "generate", "evaluate")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), *args], capture_output=True, text=True, cwd=REPO
    )


def test_help_lists_every_subcommand_without_heavy_imports():
    result = run_cli("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert f"  {name} " in result.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import run, sys; print([m for m in {HEAVY_MODULES!r} if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert probe.stdout.strip() == "[]"


def test_bad_input_is_refused_before_any_ml_library_loads(tmp_path):
    """A mistyped file or option costs a second, not the import of torch, ZenML or sklearn."""
    reports = tmp_path / "reports.csv"
    reports.write_text("study_id,impression,Impression\na,b,c\n")
    config = tmp_path / "bad.yaml"
    config.write_text("model_name: x\nllm:\n  retrieval_k: -1\n")
    good = tmp_path / "good.csv"
    good.write_text("study_id,impression\na,Effusion.\n")
    # What a run's data section needs from outside the config, before the stack starts.
    no_path = tmp_path / "no_path.yaml"
    no_path.write_text("model_name: x\ndata:\n  source: manifest\n")
    no_manifest = tmp_path / "no_manifest.yaml"
    no_manifest.write_text("model_name: x\ndata:\n  source: manifest\n  manifest: {path: a.csv}\n")
    no_key = tmp_path / "no_key.yaml"
    no_key.write_text(
        "model_name: x\ndata:\n  deid: {require_key: true, key_env: RADREPORT_TEST_UNSET}\n"
    )
    said = {
        no_path: "data: source is 'manifest' but manifest.path is not set",
        no_manifest: (
            f"data.manifest.path: a.csv does not exist (relative to the working directory, {REPO})"
        ),
        no_key: "data.deid: no de-identification key: set $RADREPORT_TEST_UNSET or deid.key in "
        "the config",
    }
    heavy = ("torch", "transformers", "zenml", "mlflow", "sklearn", "matplotlib")
    probe = (
        "import sys, run\n"
        "try:\n    run.cli(sys.argv[1:])\n"
        "except SystemExit as exit:\n"
        f"    print(exit.code, [m for m in {heavy!r} if m in sys.modules])"
    )
    for arguments in (
        ["evaluate", "--reports", str(reports), "--out", str(tmp_path / "out")],
        ["baselines", "--train", str(reports), "--reports", str(reports)],
        ["train", "--config", str(config)],
        ["generate", "--impression", "Effusion.", "--stop-bias", "30"],
        ["generate", "--impression", "Effusion.", "--max-new-tokens", "0"],
        ["evaluate", "--reports", str(good), "--out", str(tmp_path / "kept"), "--stop-bias", "-21"],
        ["evaluate", "--reports", str(good), "--out", str(good)],  # --out is a file
        ["train", "--config", str(no_path)],
        ["data", "--config", str(no_manifest)],
        ["train", "--config", str(no_manifest)],
        ["train", "--config", str(no_key)],
        ["data", "--config", str(no_key)],
    ):
        result = subprocess.run(
            [sys.executable, "-c", probe, *arguments], capture_output=True, text=True, cwd=REPO
        )
        assert result.stdout.strip() == "2 []", result.stdout + result.stderr
        assert result.stderr.startswith("error: ")
        config = Path(arguments[-1])
        if config in said:
            assert result.stderr.strip() == f"error: {config}: {said[config]}"
    assert not (tmp_path / "kept").exists()  # refused before --out is made


@pytest.mark.parametrize("name", ["demo", "iu_xray", "llama3_8b_single_gpu"])
def test_shipped_configs_validate(name):
    config = load_run_config(REPO / "configs" / f"{name}.yaml")
    assert config.model_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model_name: x\nllm:\n  lora_rank: 8\n", "llm.lora_rank: unknown key"),
        ("model_name: x\nllm:\n  lora_r: eight\n", "llm.lora_r:"),
        ("model_name: x\ndata:\n  dicom:\n    workers: -1\n", "data.dicom.workers:"),
        ("llm: {}\n", "model_name: required key is missing"),
        ("model_name: x\nllm:\n  epochs: true\n", "llm.epochs: Input should be a number"),
        ("model_name: x\nevaluation:\n  uncertain_as: true\n", "evaluation.uncertain_as:"),
        (
            "model_name: x\nllm:\n  epochs: 1\n  lora_r: 8\n  epochs: 2\n",
            "line 5: duplicate key 'epochs' (in llm; first on line 3)",
        ),
        (
            "model_name: x\ndata:\n  split: {train: 0.8, val: 0.1, train: 0.1}\n",
            "duplicate key 'train' (in data.split;",
        ),
        (
            "model_name: x\nllm:\n  base_model: /nonexistent/model\n",
            "llm.base_model: Base model folder '/nonexistent/model' does not exist",
        ),
        (
            "model_name: x\nllm:\n  base_model: bundled:llama-70b\n",
            "llm.base_model: Unknown bundled model 'llama-70b'",
        ),
        (
            "model_name: x\nexport:\n  merged: true\n  base_model: /nonexistent/original\n",
            "export.base_model: Base model folder '/nonexistent/original' does not exist",
        ),
        ("model_name: x\nexport:\n  dtype: float32\n", "export.dtype:"),
        ("model_name: x\ndata:\n  deid: {key_env: ''}\n", "data.deid.key_env: String should"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_run_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and expected in message
    assert "\n" not in message


def test_a_check_across_keys_names_them_without_repeating_the_whole_section(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "model_name: x\nllm:\n  save_steps: 7\n  eval_steps: 5\n  early_stopping_patience: 2\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_run_config(path)
    assert str(caught.value) == (
        f"{path}: llm: save_steps (7) must be a multiple of eval_steps (5) when early "
        "stopping is on"
    )


def test_config_numbers_may_be_written_as_integers_and_flags_as_booleans(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(
        "model_name: x\nllm:\n  epochs: 2\n  load_in_4bit: true\n  fused_lora: false\n"
        "  pad_to_multiple_of: 8\ndata:\n  split: {train: 1, val: 0, test: 0}\n"
    )
    config = load_run_config(path)
    assert (config.llm.epochs, config.llm.load_in_4bit, config.llm.fused_lora) == (2.0, True, False)
    assert config.data.split.train == 1.0


@pytest.mark.parametrize(
    "spec",
    ["unsloth/llama-3-8b-Instruct-bnb-4bit", "bundled:smollm2-135m-instruct", "{tmp}", "./models"],
)
def test_base_models_that_resolve_are_accepted_without_network(
    tmp_path, monkeypatch, spec, tiny_llama_dir
):
    # Relative folders are read from the current directory, as data.manifest.path is.
    shutil.copytree(tiny_llama_dir, tmp_path / "models")
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        shutil.copy(tiny_llama_dir / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "good.yaml"
    path.write_text(f"model_name: x\nllm:\n  base_model: {spec.format(tmp=tmp_path)}\n")
    assert load_run_config(path).llm.base_model == spec.format(tmp=tmp_path)


def test_a_relative_base_model_folder_is_looked_for_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text("model_name: x\nllm:\n  base_model: ./models\n")
    with pytest.raises(ConfigError, match=f"'./models' \\({tmp_path / 'models'}\\) does not"):
        load_run_config(path)


def latin1_demo_config() -> bytes:
    """configs/demo.yaml as an editor set to latin-1 saves it after a comment gets an é."""
    text = (REPO / "configs" / "demo.yaml").read_text()
    return text.replace("model_name:", "# Démo\nmodel_name:", 1).encode("latin-1")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"model_name: x\nunknown_section: 1\n", "unknown_section: unknown key"),
        (None, "config file not found"),
        (latin1_demo_config(), "line 2: not UTF-8 text (byte 0xe9 at position 93)"),
        (b"model_name: x\nllm:\n  epochs: true\n", "llm.epochs: Input should be a number"),
        (b"model_name: x\nllm:\n  epochs: 1\n  epochs: 2\n", "line 4: duplicate key 'epochs'"),
        (b"model_name: x\nllm:\n  base_model: /nonexistent/model\n", "llm.base_model: "),
    ],
)
def test_cli_exits_2_with_one_line_on_bad_config(tmp_path, content, expected):
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_bytes(content)
    result = run_cli("train", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert expected in result.stderr and "Traceback" not in result.stderr


def write_manifest(folder: Path, rows: list[str]) -> Path:
    manifest = folder / "manifest.csv"
    manifest.write_text("study_id,patient_id,impression,report,dicom_dir\n" + "\n".join(rows))
    return manifest


def test_data_manifest_quarantines_broken_files_and_writes_report(tmp_path):
    broken = tmp_path / "study1"
    broken.mkdir()
    (broken / "empty.dcm").write_bytes(b"")
    (broken / "notes.dcm").write_text("not a DICOM file")
    manifest = write_manifest(
        tmp_path,
        [
            "s1,p1,Small effusion.,Small right pleural effusion.,study1",
            "s2,p2,Normal.,,",
        ],
    )
    out = tmp_path / "report"
    result = run_cli("data", "--manifest", str(manifest), "--out", str(out))
    assert result.returncode == 0, result.stderr
    quarantine = (out / "quarantine.csv").read_text().splitlines()
    assert quarantine[0] == "manifest_line,path,study_id,series_uid,reason_code,message"
    assert len(quarantine) >= 3  # two broken files and the row without a report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["studies_in"] == 2 and summary["studies_accepted"] == 1


def test_a_second_command_into_the_same_out_folder_waits_for_the_first(tmp_path):
    """Two writers at once left files of both and a torn volumes.npz."""
    import time

    from radreport.folder_lock import FolderLock

    manifest = write_manifest(tmp_path, ["s1,p1,Normal.,Clear lungs.,"])
    out = tmp_path / "out"
    out.mkdir()
    held = FolderLock(out)  # as a command writing there would hold it
    command = subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), "data", "--manifest", str(manifest),
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        time.sleep(5)
        assert command.poll() is None and not (out / "summary.json").exists()
    finally:
        held.release()
    _, stderr = command.communicate(timeout=120)
    assert command.returncode == 0, stderr
    assert f"another radreport command is writing to {out}: waiting for it" in stderr
    assert json.loads((out / "summary.json").read_text())["studies_accepted"] == 1
    assert not [path.name for path in out.iterdir() if path.name.startswith(".")]  # no lock
    # and no partial file left


def test_data_manifest_with_nothing_usable_exits_1_with_one_line(tmp_path):
    manifest = write_manifest(tmp_path, ["s1,p1,Normal.,,", "s1,p1,Normal.,Clear lungs.,"])
    result = run_cli("data", "--manifest", str(manifest))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: ") and result.stderr.strip().count("\n") == 0
    out = tmp_path / "out"
    result = run_cli("data", "--manifest", str(manifest), "--out", str(out))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    # The record of why is written all the same, de-identified.
    quarantine = pd.read_csv(out / "quarantine.csv", keep_default_na=False)
    assert quarantine["reason_code"].tolist() == ["manifest_duplicate_study_id"] * 2
    assert "s1" not in set(quarantine["study_id"]) and all(quarantine["study_id"])


def json_row(study_id: str) -> str:
    return json.dumps(
        {"study_id": study_id, "patient_id": f"p-{study_id}", "impression": "Normal.",
         "report": "Clear lungs."}
    )  # fmt: skip


BAD_LINES = {
    "manifest.jsonl": (
        f'{json_row("s1")}\n{{"study_id": "S9", broken\n[1,2,3]\n{json_row("s2")}\n',
        [
            "line 2: not valid JSON (Expecting property name enclosed in double quotes at "
            "column 20)",
            "line 3: not a JSON object",
        ],
    ),
    "manifest.csv": (
        "study_id,patient_id,impression,report\ns1,p1,Normal.,Clear.\nx,y,z,w,v,extra\n"
        "x,y,z,w,v,extra,more\ns2,p2,Normal.,Clear.\n",
        ["line 3: 6 fields, the header has 4", "line 4: 7 fields, the header has 4"],
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_LINES))
def test_data_manifest_quarantines_bad_lines_and_keeps_the_other_rows(tmp_path, name):
    text, messages = BAD_LINES[name]
    manifest = tmp_path / name
    manifest.write_text(text)
    out = tmp_path / "report"
    result = run_cli("data", "--manifest", str(manifest), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "studies in: 4, accepted: 2",
        "  quarantined manifest_bad_line: 2",
        "wrote quarantine.csv, quarantine_sources.csv, summary.json, studies.parquet and "
        f"volumes.npz to {out}",
    ]
    with (out / "quarantine.csv").open(newline="") as file:
        quarantine = list(csv.DictReader(file))
    assert [(r["path"], r["reason_code"], r["message"]) for r in quarantine] == [
        (str(manifest), "manifest_bad_line", message) for message in messages
    ]
    files = sorted(path.name for path in out.iterdir())
    assert files == [
        "quarantine.csv",
        "quarantine_sources.csv",
        "studies.parquet",
        "summary.json",
        "volumes.npz",
    ]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        (
            "m.csv",
            b"study_id,patient_id,impression,report\ns1,p1,\xc9panchement.,Clear.\n",
            ": line 2: not UTF-8 text (byte 0xc9 at position 44); save it as UTF-8",
        ),
        ("m.csv", b"", ": empty file"),
        ("m.jsonl", b"", ": empty file"),
        ("m.csv", b"study_id,impression,report\ns1,Normal.,Clear.\n", " has no column "
         "'patient_id' (field patient_id); the header has 'study_id', 'impression', 'report'"),
        ("folder.csv", None, " is a directory, not a manifest file"),
        ("missing.csv", None, " does not exist"),
    ],
)  # fmt: skip
def test_data_manifest_that_cannot_be_read_exits_2_with_one_line(tmp_path, name, content, problem):
    manifest = tmp_path / name
    if content is not None:
        manifest.write_bytes(content)
    elif name == "folder.csv":
        manifest.mkdir()
    result = run_cli("data", "--manifest", str(manifest), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr == f"error: manifest {manifest}{problem}\n"


def test_data_refuses_an_unusable_out_before_ingesting(tmp_path):
    manifest = write_manifest(tmp_path, ["s1,p1,Normal.,Clear lungs.,"])
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    blocked = tmp_path / "blocked"
    (blocked / "studies.parquet").mkdir(parents=True)
    for out, problem in [
        (taken, "exists and is not a directory"),
        (taken / "report", "cannot be created (Not a directory)"),
        (blocked, "studies.parquet is a directory there; the command writes a file"),
    ]:
        result = run_cli("data", "--manifest", str(manifest), "--out", str(out))
        assert result.returncode == 2
        assert (result.stdout, result.stderr) == ("", f"error: --out {out}: {problem}\n")
    assert taken.read_text() == "keep me"
    result = run_cli(
        "data", "--config", str(REPO / "configs" / "demo.yaml"), "--out", str(tmp_path / "out")
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: --out goes with --manifest: a --config run stores its outputs as artifacts\n"
    )


def manifest_config(tmp_path: Path, manifest: Path, base_model: str) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "model_name": "radreport-manifest-lines",
                "data": {"source": "manifest", "manifest": {"path": str(manifest)}},
                "llm": {"base_model": base_model},
            }
        )
    )  # JSON is YAML
    return config


def test_data_config_with_an_unreadable_manifest_exits_2_before_the_pipeline(
    radreport_stack, tmp_path
):
    manifest = tmp_path / "missing.csv"
    config = manifest_config(tmp_path, manifest, "bundled:smollm2-135m-instruct")
    result = run_cli("data", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {config}: data.manifest.path: {manifest} does not exist"
    )
    assert "Traceback" not in result.stderr


def test_data_config_puts_bad_lines_in_the_quarantine_artifact(
    radreport_stack, tiny_llama_dir, tmp_path
):
    from zenml.client import Client

    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(BAD_LINES["manifest.jsonl"][0])
    config = manifest_config(tmp_path, manifest, str(tiny_llama_dir))
    result = run_cli("data", "--config", str(config))
    assert result.returncode == 0, result.stderr
    # Log lines go to stderr, as train's do: stdout is the run's report alone.
    assert "built-in DEMO key" in result.stderr and "DEMO key" not in result.stdout
    run = Client().get_pipeline("data_pipeline").last_run
    quarantine = run.steps["ingest_studies"].outputs["quarantine"][0].load()
    assert quarantine[["path", "study_id", "reason_code", "message"]].values.tolist() == [
        [str(manifest), "", "manifest_bad_line", message]
        for message in BAD_LINES["manifest.jsonl"][1]
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"study_id,impression\na,caf\xe9\n", "not UTF-8 text"),
        (b"id,text\na,b\n", "missing column 'study_id'"),
    ],
)
def test_evaluate_refuses_an_unreadable_reports_csv_before_loading_a_model(
    tmp_path, content, expected
):
    reports = tmp_path / "reports.csv"
    reports.write_bytes(content)
    result = run_cli("evaluate", "--reports", str(reports), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_impression_that_is_not_utf8_is_refused_in_one_line():
    # A latin-1 shell passes é as the byte 0xe9, which Python holds as a lone surrogate.
    result = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "generate", "--impression", b"caf\xe9 effusion"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert result.stderr == "error: --impression is not UTF-8 text (byte 0xe9 at character 4)\n"


def test_an_impression_of_only_invisible_characters_is_refused_as_empty():
    result = run_cli("generate", "--impression", "\u200b\u00ad ")
    assert result.returncode == 2
    assert result.stderr == (
        "error: --impression is empty (or holds only spaces and invisible characters)\n"
    )


def test_a_hub_base_model_that_cannot_be_had_stops_train_before_the_run(tmp_path):
    config = tmp_path / "hub.yaml"
    config.write_text("model_name: hubtest\nllm:\n  base_model: org/not-cached\n")
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    for command in ("train", "data"):
        result = subprocess.run(
            [sys.executable, str(REPO / "run.py"), command, "--config", str(config)],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=environment,
        )
        assert result.returncode == 2
        assert result.stderr == (
            f"error: {config}: llm.base_model: 'org/not-cached' is not in the Hugging Face cache "
            f"({tmp_path / 'hub'}) and HF_HUB_OFFLINE is set: download it where there is "
            "network, or set it to a local folder\n"
        )


def test_a_cache_folder_that_cannot_be_made_is_one_line_before_any_work(tmp_path):
    """A service account whose home cannot be written, and no RADREPORT_CACHE_DIR."""
    home = tmp_path / "file"
    home.write_text("")
    env = {key: value for key, value in os.environ.items() if key != "RADREPORT_CACHE_DIR"}
    result = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "data", "--manifest", str(tmp_path / "m.csv")],
        capture_output=True, text=True, cwd=REPO, env={**env, "HOME": str(home / "home")},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        f"error: the cache folder {home}/home/.cache/radreport cannot be made (Not a "
        "directory): set RADREPORT_CACHE_DIR to a folder you can write\n"
    )


def test_a_manifest_the_user_cannot_reach_is_refused_before_out_is_made(tmp_path):
    out = tmp_path / "out"
    result = run_cli("data", "--manifest", str(tmp_path / "m.csv"), "--out", str(out))
    assert result.returncode == 2
    assert result.stderr == f"error: manifest {tmp_path / 'm.csv'} does not exist\n"
    assert not out.exists()


def test_a_configs_manifest_in_a_folder_the_user_cannot_enter_is_one_line(tmp_path, capfd):
    # run.py by its path: pytest's importlib mode puts no checkout folder on sys.path.
    spec = importlib.util.spec_from_file_location("run", REPO / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)

    manifest = locked_folder(tmp_path) / "x.csv"
    path = tmp_path / "config.yaml"
    path.write_text(f"model_name: x\ndata:\n  source: manifest\n  manifest: {{path: {manifest}}}\n")
    config = load_run_config(path)
    if os.geteuid() == 0:  # root enters the folder: the call passes, and imports what it needs
        run.check_data_inputs_or_exit(path, config)  # (the child cannot read the stdlib)
    said = raised_as_another_user(lambda: run.check_data_inputs_or_exit(path, config))
    assert said == "SystemExit: 2"
    assert capfd.readouterr().err == (
        f"error: {path}: data.manifest.path: {manifest}: permission denied\n"
    )


def test_a_data_out_set_that_cannot_be_written_leaves_the_earlier_set_whole(tmp_path):
    """A full disk halfway through the set: EFBIG from a file size limit stands in for it."""
    import resource
    import signal

    out = tmp_path / "out"
    first = write_manifest(tmp_path, ["s1,p1,Small effusion.,Small right effusion.,"])
    assert run_cli("data", "--manifest", str(first), "--out", str(out)).returncode == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    assert (out / "studies.parquet").stat().st_size > 4096 > (out / "summary.json").stat().st_size

    def files_up_to_4_kib():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    second = tmp_path / "second.csv"
    second.write_text("study_id,patient_id,impression,report\ns2,p2,Normal.,Lungs clear.\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "data", "--manifest", str(second), "--out",
         str(out)],
        capture_output=True, text=True, cwd=REPO, preexec_fn=files_up_to_4_kib,
    )  # fmt: skip
    assert result.returncode == 1
    [said] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert said.startswith(f"error: --out {out}: cannot write its files (")
    assert said.endswith("File too large); it keeps the files it had")
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
