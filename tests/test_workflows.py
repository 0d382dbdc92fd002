"""The GitHub workflows: matrix from the catalog, timeouts, permissions, fork safety, pins, linters."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.scenarios.catalog import list_scenarios

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_DIR = ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml"))
RUNNER_FILE = ROOT / ".github" / "gpu-runner.json"
SHA_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
GATE_LABEL = "run-perf-gate"
PR_EVENT_TYPES = ("pull_request", "pull_request_target")


def load(path: Path) -> dict[str, Any]:
    """A workflow as a dict; YAML 1.1 reads the key `on` as True, so it is renamed back."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:
        data["on"] = data.pop(True)
    return data


def triggers(workflow: dict[str, Any]) -> set[str]:
    on = workflow["on"]
    return {on} if isinstance(on, str) else set(on)


def is_self_hosted(job: dict[str, Any]) -> bool:
    """Literal self-hosted labels, or labels read at run time from the runner file's plan output."""
    runs_on = job["runs-on"]
    text = json.dumps(runs_on)
    return "self-hosted" in text or "outputs.runner" in text


def step_outputs(command: str, env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Run one workflow `run:` script as Actions would (bash, repo root) and parse $GITHUB_OUTPUT."""
    output = tmp_path / "github_output"
    output.write_text("")
    subprocess.run(["bash", "-eo", "pipefail", "-c", command], cwd=ROOT, check=True, timeout=60,
                   env={**os.environ, **env, "GITHUB_OUTPUT": str(output)})
    return dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)


# --- a small evaluator for the `${{ }}` expressions used in job `if:` conditions -------------------

TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>&&|\|\||==|!=|<=|>=|[()!<>,])"
                   r"|(?P<name>[A-Za-z_][A-Za-z0-9_.*-]*))")


@dataclass(frozen=True)
class Context:
    """What an `if:` may read: event payload, repository, and the results of the jobs it needs."""

    event_name: str
    event: dict[str, Any]
    repository: str
    needs: dict[str, str]  # job id -> 'success' | 'skipped'

    def lookup(self, dotted: str) -> Any:
        head, *rest = dotted.split(".")
        roots: dict[str, Any] = {
            "github": {"event_name": self.event_name, "event": self.event, "repository": self.repository},
            "needs": {job: {"result": result, "outputs": {}} for job, result in self.needs.items()},
            "inputs": {}, "vars": {}, "env": {},
        }
        value: Any = roots[head]
        for key in rest:
            value = value.get(key) if isinstance(value, dict) else None
        return value


class Expression:
    """Recursive descent over GitHub's expression grammar (the subset the workflows use)."""

    def __init__(self, text: str, context: Context) -> None:
        text = text.strip()
        if text.startswith("${{") and text.endswith("}}"):
            text = text[3:-2]
        self.tokens = [m.group().strip() for m in TOKEN.finditer(text) if m.group().strip()]
        if "".join(self.tokens) != re.sub(r"\s+", "", text):
            raise ValueError(f"cannot tokenize expression {text!r}")
        self.pos = 0
        self.context = context

    def value(self) -> Any:
        result = self._or()
        if self.pos != len(self.tokens):
            raise ValueError(f"trailing tokens {self.tokens[self.pos:]}")
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> str:
        token = self.tokens[self.pos]
        if expected is not None and token != expected:
            raise ValueError(f"expected {expected!r}, got {token!r}")
        self.pos += 1
        return token

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            left = left or right
        return left

    def _and(self) -> Any:
        left = self._compare()
        while self._peek() == "&&":
            self._take()
            right = self._compare()
            left = left and right
        return left

    def _compare(self) -> Any:
        left = self._unary()
        while self._peek() in ("==", "!="):
            op = self._take()
            right = self._unary()
            equal = _fold(left) == _fold(right)
            left = equal if op == "==" else not equal
        return left

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not self._unary()
        return self._primary()

    def _primary(self) -> Any:
        token = self._take()
        if token == "(":
            inner = self._or()
            self._take(")")
            return inner
        if token.startswith("'"):
            return token[1:-1].replace("''", "'")
        if re.fullmatch(r"\d+(\.\d+)?", token):
            return float(token)
        if token in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[token]
        if self._peek() == "(":
            return self._call(token)
        return self.context.lookup(token)

    def _call(self, name: str) -> Any:
        self._take("(")
        args = []
        while self._peek() != ")":
            args.append(self._or())
            if self._peek() == ",":
                self._take()
        self._take(")")
        needs = self.context.needs.values()
        functions: dict[str, Callable[..., Any]] = {
            "always": lambda: True,
            "cancelled": lambda: False,
            "success": lambda: all(r == "success" for r in needs),
            "failure": lambda: False,
            "contains": lambda hay, needle: (_fold(needle) in [_fold(h) for h in hay]) if isinstance(hay, list)
            else _fold(needle) in _fold(hay),
            "startsWith": lambda s, p: _fold(s).startswith(_fold(p)),
        }
        return functions[name](*args)


def _fold(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def reachable_jobs(workflow: dict[str, Any], context: Context) -> set[str]:
    """Jobs that would run for this event: their `if:` holds and every job they need ran."""
    jobs = workflow["jobs"]
    results: dict[str, str] = {}

    def result(job_id: str) -> str:
        if job_id not in results:
            job = jobs[job_id]
            needs = job.get("needs", [])
            needs = [needs] if isinstance(needs, str) else needs
            needed = {n: result(n) for n in needs}
            local = Context(context.event_name, context.event, context.repository, needed)
            condition = job.get("if")
            if condition is None:
                runs = all(r == "success" for r in needed.values())
            else:
                runs = bool(Expression(str(condition), local).value())
            results[job_id] = "success" if runs else "skipped"
        return results[job_id]

    return {job_id for job_id in jobs if result(job_id) == "success"}


def pr_event(action: str, *, fork: bool, label: str | None = None) -> Context:
    base = "sgl-project/sglang"
    head = "mallory/sglang" if fork else base
    event: dict[str, Any] = {
        "action": action,
        "pull_request": {"number": 7, "head": {"repo": {"full_name": head}, "sha": "b" * 40},
                         "base": {"sha": "a" * 40}, "labels": [{"name": label}] if label else []},
    }
    if action == "labeled":
        event["label"] = {"name": label}
    return Context("pull_request", event, base, {})


# --- the tests --------------------------------------------------------------------------------------


def test_the_three_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "nightly-gpu.yml", "pr-perf-gate.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_job_has_a_timeout_and_explicit_minimal_permissions(path: Path) -> None:
    workflow = load(path)
    assert workflow.get("permissions") == {}, "the workflow-wide token must hold nothing"
    assert "concurrency" in workflow
    for job_id, job in workflow["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int) and 0 < job["timeout-minutes"] <= 360, job_id
        assert isinstance(job.get("permissions"), dict), f"{job_id}: permissions must be explicit"
        assert job["permissions"].get("contents", "read") in ("read", "write", "none"), job_id
        if is_self_hosted(job):
            assert job["permissions"] == {"contents": "read"}, f"{job_id}: a self-hosted job gets read only"
            assert "secrets." not in json.dumps(job), f"{job_id}: a self-hosted job must not see secrets"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_full_commit_sha(path: Path) -> None:
    uses_lines = [line.strip() for line in path.read_text().splitlines() if re.match(r"\s*(- )?uses:", line)]
    assert uses_lines
    for line in uses_lines:
        ref = line.split("uses:", 1)[1].split("#", 1)[0].strip()
        assert SHA_PIN.match(ref), f"{path.name}: {ref} is not pinned to a 40-hex commit"
        assert re.search(r"# v\d", line), f"{path.name}: {ref} needs a `# vX.Y.Z` comment for humans"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_privileged_trigger_runs_pr_code(path: Path) -> None:
    workflow = load(path)
    assert not triggers(workflow) & {"pull_request_target", "workflow_run"}
    for job_id, job in workflow["jobs"].items():
        writes = any(v == "write" for v in job["permissions"].values())
        checkouts = [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith("actions/checkout@")]
        checks_out_head = "pull_request.head" in json.dumps(checkouts) or any(
            "pull/" in str(s.get("run", "")) or "pull_request.head" in str(s.get("run", ""))
            for s in job.get("steps", []))
        assert not (writes and checks_out_head), f"{job_id}: a write token next to PR code"
        assert not (writes and is_self_hosted(job)), f"{job_id}: a write token on the self-hosted runner"
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, f"{job_id}: token on disk"


def test_runner_labels_live_in_one_file() -> None:
    labels = json.loads(RUNNER_FILE.read_text())["labels"]
    assert "self-hosted" in labels and "b200x4" in labels
    for path in WORKFLOWS:
        for job_id, job in load(path)["jobs"].items():
            literal = json.dumps(job["runs-on"])
            assert not any(label in literal for label in ("self-hosted", "b200x4")), (
                f"{path.name}:{job_id}: runner labels belong in {RUNNER_FILE.name}")


@pytest.mark.parametrize(("workflow_name", "plan_job"), [("nightly-gpu.yml", "plan"),
                                                         ("pr-perf-gate.yml", "authorize")])
def test_scenario_matrix_equals_the_catalog(workflow_name: str, plan_job: str, tmp_path: Path) -> None:
    workflow = load(WORKFLOW_DIR / workflow_name)
    plan = workflow["jobs"][plan_job]
    step = next(s for s in plan["steps"] if s.get("id") == "catalog")
    outputs = step_outputs(step["run"], {}, tmp_path)
    toml_names = sorted(p.stem for p in (ROOT / "harness" / "scenarios").glob("*.toml"))
    sglang_names = sorted(s.name for s in list_scenarios() if "sglang" in s.targets)
    assert sglang_names and set(sglang_names) <= set(toml_names)
    assert json.loads(outputs["scenarios"]) == sglang_names
    assert json.loads(outputs["runner"]) == json.loads(RUNNER_FILE.read_text())["labels"]
    assert plan["outputs"]["scenarios"] == "${{ steps.catalog.outputs.scenarios }}"
    gpu_jobs = {j: job for j, job in workflow["jobs"].items() if is_self_hosted(job)}
    assert gpu_jobs
    for job in gpu_jobs.values():
        assert job["runs-on"] == f"${{{{ fromJSON(needs.{plan_job}.outputs.runner) }}}}"
        assert f"needs.{plan_job}.outputs.scenarios" in json.dumps(job)
    if workflow_name == "nightly-gpu.yml":
        assert workflow["jobs"]["run"]["strategy"]["matrix"] == {
            "scenario": "${{ fromJSON(needs.plan.outputs.scenarios) }}"}


def test_ci_workflow_runs_the_readme_test_command_and_the_linters() -> None:
    workflow = load(WORKFLOW_DIR / "ci.yml")
    assert {"push", "pull_request"} <= triggers(workflow)
    runs = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    readme = (ROOT / "README.md").read_text()
    assert "./dev test" in readme and "./dev test" in runs
    for tool in ("ruff check", "actionlint", "zizmor"):
        assert any(r.startswith(tool) for r in runs), tool
    assert not any(is_self_hosted(job) for job in workflow["jobs"].values())


def test_nightly_cannot_be_triggered_by_a_pull_request() -> None:
    workflow = load(WORKFLOW_DIR / "nightly-gpu.yml")
    assert triggers(workflow) == {"schedule", "workflow_dispatch"}


@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened", "labeled", "edited"])
@pytest.mark.parametrize("label", [None, "perf", "needs-review"])
def test_self_hosted_jobs_unreachable_from_an_unlabeled_fork_pr(action: str, label: str | None) -> None:
    workflow = load(WORKFLOW_DIR / "pr-perf-gate.yml")
    if action == "labeled" and label is None:
        label = "bug"
    context = pr_event(action, fork=True, label=label)
    ran = reachable_jobs(workflow, context)
    assert not {j for j in ran if is_self_hosted(workflow["jobs"][j])}
    assert ran == set()


def test_fork_pr_with_the_label_still_needs_a_new_label_after_a_push() -> None:
    workflow = load(WORKFLOW_DIR / "pr-perf-gate.yml")
    labeled = reachable_jobs(workflow, pr_event("labeled", fork=True, label=GATE_LABEL))
    assert labeled == {"authorize", "gate", "report"}
    pushed = reachable_jobs(workflow, pr_event("synchronize", fork=True, label=GATE_LABEL))
    assert pushed == set()


def test_same_repository_pr_runs_the_gate_on_push() -> None:
    workflow = load(WORKFLOW_DIR / "pr-perf-gate.yml")
    assert reachable_jobs(workflow, pr_event("synchronize", fork=False)) == {"authorize", "gate", "report"}
    assert reachable_jobs(workflow, pr_event("labeled", fork=False, label="docs")) == set()


@pytest.mark.parametrize(("gate_exit", "step_exit"), [(0, 0), (1, 1), (2, 2), (3, 0)])
def test_gate_step_passes_an_inconclusive_gate_on_as_neutral(gate_exit: int, step_exit: int, tmp_path: Path) -> None:
    """The gate step's own script, `harness gate` replaced by a stub exiting with the code under test."""
    workflow = load(WORKFLOW_DIR / "pr-perf-gate.yml")
    step = next(s for s in workflow["jobs"]["gate"]["steps"] if s.get("id") == "gate")
    stub = tmp_path / "venv" / "bin" / "harness"
    stub.parent.mkdir(parents=True)
    stub.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/argv\nexit {gate_exit}\n")
    stub.chmod(0o755)
    output = tmp_path / "github_output"
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "RUNNER_TEMP": str(tmp_path), "GATE_BUDGET_S": "900",
                                                      "SCENARIOS": "baseline", "GITHUB_OUTPUT": str(output)})
    assert done.returncode == step_exit
    assert output.read_text().strip() == f"code={gate_exit}"
    assert ("::warning title=perf gate inconclusive::" in done.stdout) == (gate_exit == 3)
    assert "--budget 900" in (tmp_path / "argv").read_text()
    assert workflow["jobs"]["gate"]["outputs"]["code"] == "${{ steps.gate.outputs.code }}"
    neutral = next(s for s in workflow["jobs"]["report"]["steps"] if "conclusion=neutral" in s.get("run", ""))
    assert "needs.gate.outputs.code == '3'" in neutral["if"]


def test_the_expression_evaluator_is_not_trivially_false() -> None:
    context = pr_event("opened", fork=True)
    assert Expression("github.event.pull_request.head.repo.full_name != github.repository", context).value()
    assert Expression("!(1 == 2) && ('A' == 'a')", context).value() is True
    assert Expression("contains(github.event.pull_request.labels, 'x')", context).value() is False


def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is missing: it comes from the dev extra (pip install -e '.[dev]')"
    return found


def test_actionlint_reports_nothing() -> None:
    proc = subprocess.run([_tool("actionlint"), "-no-color"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_zizmor_finds_nothing_of_medium_or_higher_severity() -> None:
    proc = subprocess.run([_tool("zizmor"), "--offline", "--persona", "auditor", "--format", "json",
                           str(WORKFLOW_DIR)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    findings = json.loads(proc.stdout)
    serious = [f"{f['ident']}: {f['desc']}" for f in findings
               if f["determinations"]["severity"] in ("Medium", "High")]
    assert serious == [], serious


def test_nightly_alert_fires_on_a_step_at_tonights_commit_or_an_oracle_failure(tmp_path: Path) -> None:
    tonight, earlier = "c" * 40, "d" * 40
    history = tmp_path / "history.json"
    runs = tmp_path / "runs"
    (runs / "baseline").mkdir(parents=True)
    result = runs / "baseline" / "result.json"

    def decide(step_commit: str, passed: bool) -> tuple[str, str]:
        history.write_text(json.dumps({"series": [{"scenario": "baseline", "metric": "tpot_ms", "steps": [
            {"index": 3, "before": 1.0, "after": 1.3, "commit": step_commit, "relative": 0.3}]}]}))
        result.write_text(json.dumps({"schema_version": 1, "scenario": "baseline", "status": "ok", "oracle": {"verdicts": [
            {"name": "capture_num_tokens", "expected": 1, "observed": 4 if not passed else 1,
             "passed": passed}]}}))
        out = subprocess.run([sys.executable, str(ROOT / ".github/scripts/nightly_alert.py"), "--history",
                              str(history), "--runs", str(runs), "--commit", tonight, "--body",
                              str(tmp_path / "alert.md")], capture_output=True, text=True, check=True)
        return out.stdout.strip(), (tmp_path / "alert.md").read_text()

    assert decide(earlier, True)[0] == "alert=false"
    fired, body = decide(tonight, True)
    assert fired == "alert=true" and "| baseline | tpot_ms | 1 | 1.3 | +30.00% |" in body
    fired, body = decide(earlier, False)
    assert fired == "alert=true" and "capture_num_tokens: expected `1`, observed `4`" in body


def test_nightly_checks_the_fixes_at_the_benchmarked_commit_and_asv_reads_the_verdicts() -> None:
    """`fixes` (hosted, read-only) runs sglang-check --source on the run jobs' commit; record merges it into runs/<sha>."""
    jobs = load(WORKFLOW_DIR / "nightly-gpu.yml")["jobs"]
    fixes = jobs["fixes"]
    assert not is_self_hosted(fixes) and fixes["permissions"] == {"contents": "read"}

    def sglang_checkout(job: dict[str, Any]) -> dict[str, Any]:
        return next(s["with"] for s in job["steps"] if s.get("with", {}).get("path") == ".asv/sglang")

    assert sglang_checkout(fixes)["ref"] == sglang_checkout(jobs["run"])["ref"] == "${{ needs.plan.outputs.sglang_sha }}"
    assert sglang_checkout(fixes)["fetch-depth"] == 0  # release tags: the nearest one picks the oracle's rules
    runs = [s["run"] for s in fixes["steps"] if "run" in s]
    assert './dev harness sglang-check --source .asv/sglang/python --out "runs/${SGLANG_SHA}/sglang-check"' in runs
    upload = next(s["with"] for s in fixes["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    download = next(s["with"] for s in jobs["record"]["steps"]
                    if str(s.get("uses", "")).startswith("actions/download-artifact@"))
    # Merged like every scenario's run directory, so RUN_DIR/sglang-check/fixes.json is where asv reads it.
    assert upload["path"] == download["path"] == "runs/" and download["merge-multiple"] is True
    assert re.fullmatch(download["pattern"].replace("*", ".*"), upload["name"])
    assert "fixes" in jobs["record"]["needs"]
    record_runs = " ".join(s.get("run", "") for s in jobs["record"]["steps"])
    assert '-path "./sglang-check/*"' in record_runs  # kept on the results branch with the night's result.json
    spec = importlib.util.spec_from_file_location("nightly_readout", ROOT / "bench" / "asv" / "readout.py")
    assert spec and spec.loader
    readout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(readout)
    assert str(readout.FIX_VERDICTS) == "sglang-check/fixes.json"


def test_nightly_measures_the_commit_beside_the_pinned_control_build(tmp_path: Path) -> None:
    """plan validates the control release, run installs it once per runner and hands it to `harness nightly`."""
    from harness.gate import control_points
    from harness.gate.nightly import _parser as nightly_parser

    workflow = load(WORKFLOW_DIR / "nightly-gpu.yml")
    jobs = workflow["jobs"]
    pinned = workflow["env"]["CONTROL_SGLANG"]
    assert re.fullmatch(r"\d+(\.\d+)+", pinned)
    check = next(s for s in jobs["plan"]["steps"] if s.get("id") == "control")
    assert jobs["plan"]["outputs"]["control_sglang"] == "${{ steps.control.outputs.version }}"
    for given, expected in (("", pinned), ("0.5.16", "0.5.16"), ("0.5.15.post1", "0.5.15.post1")):
        env = {"CONTROL_INPUT": given, "CONTROL_SGLANG": pinned}
        assert step_outputs(check["run"], env, tmp_path) == {"version": expected}
    with pytest.raises(subprocess.CalledProcessError):
        step_outputs(check["run"], {"CONTROL_INPUT": "0.5.16; curl evil", "CONTROL_SGLANG": pinned}, tmp_path)

    run = jobs["run"]
    assert run["env"]["CONTROL_SGLANG"] == "${{ needs.plan.outputs.control_sglang }}"
    install = next(s for s in run["steps"] if s.get("id") == "control")
    # Installed once: a control already in the runner's tool cache is reused as is (nothing is installed).
    cached = tmp_path / "tool-cache" / "sglang-control" / "0.5.23"
    cached.mkdir(parents=True)
    (cached / ".installed").touch()
    outputs = step_outputs(install["run"], {"RUNNER_TOOL_CACHE": str(tmp_path / "tool-cache"),
                                            "CONTROL_SGLANG": "0.5.23"}, tmp_path)
    assert outputs == {"python": f"{cached}/bin/python"}
    assert "sglang==${CONTROL_SGLANG}" in install["run"]
    nightly = next(s for s in run["steps"] if "harness\" nightly" in s.get("run", ""))
    assert nightly["env"] == {"CONTROL_PYTHON": "${{ steps.control.outputs.python }}"}
    command = " ".join(nightly["run"].replace("\\\n", " ").split())
    for part in ('--control-cmd "$CONTROL_PYTHON -m sglang.launch_server"',
                 '--head-cmd "$RUNNER_TEMP/venv/bin/python -m sglang.launch_server"',
                 '--commit "$SGLANG_SHA"', '--target sglang', '--out "runs/${SGLANG_SHA}"'):
        assert part in command, part
    known = {o for action in nightly_parser()._actions for o in action.option_strings}
    assert set(re.findall(r"(?<=\s)--[a-z-]+", re.sub(r"\$\([^)]*\)", "", command))) <= known
    assert not any('harness" run ' in s.get("run", "") for s in run["steps"])  # the paired step replaced it
    # record keeps the comparisons beside the night's results; asv reads verdict.json where nightly puts it.
    record_runs = " ".join(s.get("run", "") for s in jobs["record"]["steps"])
    for kept in ('-path "./control/*/control.json"', '-path "./control/*/verdict.json"'):
        assert kept in record_runs
    spec = importlib.util.spec_from_file_location("nightly_readout_control", ROOT / "bench" / "asv" / "readout.py")
    assert spec and spec.loader
    readout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(readout)
    assert str(readout.CONTROL_DIR) == control_points.CONTROL_DIR


def test_nightly_alert_names_a_ratio_to_control_series(tmp_path: Path) -> None:
    tonight = "c" * 40
    (tmp_path / "runs").mkdir()
    (tmp_path / "history.json").write_text(json.dumps({"series": [
        {"scenario": "baseline", "metric": "tpot_ms", "kind": "ratio_to_control", "label": "tpot_ms ÷ control",
         "steps": [{"index": 3, "before": 1.0, "after": 1.04, "commit": tonight, "relative": 0.04}]}]}))
    out = subprocess.run([sys.executable, str(ROOT / ".github/scripts/nightly_alert.py"), "--history",
                          str(tmp_path / "history.json"), "--runs", str(tmp_path / "runs"), "--commit", tonight,
                          "--body", str(tmp_path / "alert.md")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "alert=true"
    assert "| baseline | tpot_ms ÷ control | 1 | 1.04 | +4.00% |" in (tmp_path / "alert.md").read_text()
