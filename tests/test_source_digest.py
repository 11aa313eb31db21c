"""Which project files a module's results depend on, and the digest that keys caches by them."""

from __future__ import annotations

from pathlib import Path

import pytest

import radreport.source_digest as source_digest_module
from radreport.source_digest import PROJECT_ROOT, source_digest, source_files


def _relative(module: str) -> set[str]:
    return _relative_leaving_out(module)


def _relative_leaving_out(module: str, *leaving_out: str) -> set[str]:
    return {path.relative_to(PROJECT_ROOT).as_posix() for path in source_files(module, leaving_out)}


def test_a_step_depends_on_what_it_imports_and_not_on_the_rest():
    ingest = _relative("steps.ingest_studies")
    assert {
        "steps/ingest_studies.py",
        "radreport/dicom/header.py",
        "radreport/__init__.py",
    } <= ingest
    assert "radreport/llm/generate.py" not in ingest  # an LLM change keeps ingestion cached
    evaluate = _relative("steps.evaluate_reports")
    # Imported inside a function (plotting only when writing the HTML report): still counted.
    assert "radreport/metrics/report_html.py" in evaluate
    assert "radreport/metrics/plots.py" in evaluate
    # The native decoder's kernel is compiled from C at run time.
    assert "radreport/llm/llama_decode_step.c" in _relative("steps.generate_reports")


def test_a_package_s_re_exports_are_followed_only_where_it_is_imported_from():
    # Fine-tuning uses radreport.metrics' normaliser, not the evaluation the package exports.
    training = _relative("steps.finetune_llm")
    assert {"radreport/metrics/__init__.py", "radreport/metrics/normalize.py"} <= training
    assert "radreport/metrics/plots.py" not in training


def test_the_training_code_includes_the_backend_imported_by_name_not_decoding():
    training = _relative_leaving_out("radreport.llm.finetune", "radreport.llm.sample_generations")
    assert {"radreport/llm/backend_hf.py", "radreport/llm/backend_unsloth.py"} <= training
    assert "radreport/llm/training_kernels.c" in training
    assert "radreport/llm/generate.py" not in training
    # The training kernels share the compiling code, not the decode kernel's source.
    assert "radreport/llm/c_build.py" in training
    assert "radreport/llm/llama_decode_step.c" not in training


def test_libraries_are_not_followed_and_other_modules_are_refused():
    assert all(path.is_relative_to(PROJECT_ROOT) for path in source_files("radreport.llm.generate"))
    with pytest.raises(ValueError, match="torch is not a module of this project"):
        source_files("torch")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project of three modules: `radreport.a` imports `radreport.b` inside a function and
    names the C file it compiles."""
    package = tmp_path / "radreport"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(
        'SOURCE = "kernel.c"\n\ndef f():\n    from radreport.b import g\n    return g()\n'
    )
    (package / "kernel.c").write_text("int one(void) { return 1; }\n")
    (package / "other.c").write_text("int two(void) { return 2; }\n")
    (package / "b.py").write_text("def g():\n    return 1\n")
    (package / "c.py").write_text("import radreport.a\n")
    monkeypatch.setattr(source_digest_module, "PROJECT_ROOT", tmp_path)
    source_files.cache_clear()
    source_digest_module._references.cache_clear()
    yield package
    source_files.cache_clear()
    source_digest_module._references.cache_clear()


def test_the_digest_changes_with_a_dependency_and_not_with_another_file(project):
    files = [path.name for path in source_files("radreport.a")]
    assert files == ["__init__.py", "a.py", "b.py", "kernel.c"]
    before = source_digest("radreport.a")
    (project / "c.py").write_text("import radreport.a  # a module that imports a\n")
    (project / "other.c").write_text("int two(void) { return 3; }\n")
    assert source_digest("radreport.a") == before
    (project / "b.py").write_text("def g():\n    return 2\n")
    assert source_digest("radreport.a") != before
    changed = source_digest("radreport.a")
    (project / "kernel.c").write_text("int one(void) { return 0; }\n")
    assert source_digest("radreport.a") != changed


def test_every_step_s_cache_key_covers_its_project_sources():
    from steps.evaluate_reports import evaluate_reports
    from steps.ingest_studies import ingest_studies

    for step, module in (
        (ingest_studies, "steps.ingest_studies"),
        (evaluate_reports, "steps.evaluate_reports"),
    ):
        keyed = {Path(path) for path in step.configuration.cache_policy.file_dependencies}
        # All the step runs; not the module that makes the key, imported for the decorator.
        assert keyed == set(source_files(module, ("pipelines.step_cache",)))
        assert PROJECT_ROOT / "pipelines/step_cache.py" not in keyed
        assert PROJECT_ROOT / f"{module.replace('.', '/')}.py" in keyed
