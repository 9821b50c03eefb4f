"""The rehearsal's Argo semantics against cases taken from Argo's own repository (argo-workflows v4.1.2).

* resource conditions: ``workflow/executor/resource_test.go`` (``TestResourceConditionsMatching``) and the
  conditions of ``examples/k8s-jobs.yaml``, ``examples/k8s-resource-log-selector.yaml`` (a TFJob) and
  ``examples/k8s-wait-wf.yaml``, with the semantics of ``matchConditions``;
* ``when``: every expression of ``workflow/controller/when_test.go`` (``TestShouldExecute``);
* TF_CONFIG: the format of training-operator v1.9 ``genTFConfigJSONStr`` (pkg/controller.v1/tensorflow).
"""

from __future__ import annotations

import json

import pytest

from mnistkit.errors import ConfigError
from mnistkit.manifests.conditions import parse_requirements, resource_outcome
from mnistkit.rehearsal.expressions import evaluate_when, substitute


# resource_test.go: success "status.phase == Succeeded", failure "status.phase == Error"
@pytest.mark.parametrize(
    ("phase", "outcome"), [("Error", "failed"), ("Succeeded", "succeeded"), ("Pending", "waiting")]
)
def test_argo_resource_conditions_matching(phase: str, outcome: str) -> None:
    obj = {"name": "test", "status": {"phase": phase}}
    assert resource_outcome(obj, "status.phase == Succeeded", "status.phase == Error") == outcome


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ({"succeeded": 3}, "succeeded"),
        ({"succeeded": 2}, "waiting"),
        ({"failed": 2, "succeeded": 5}, "failed"),
        ({"failed": 1}, "waiting"),
        ({}, "waiting"),
    ],
)
def test_argo_example_k8s_jobs(status: dict[str, int], outcome: str) -> None:
    # examples/k8s-jobs.yaml: successCondition: status.succeeded > 2, failureCondition: status.failed > 1
    assert resource_outcome({"status": status}, "status.succeeded > 2", "status.failed > 1") == outcome


@pytest.mark.parametrize(
    ("workers", "outcome"),
    [
        ({"succeeded": 2}, "succeeded"),
        ({"succeeded": 1, "active": 1}, "waiting"),
        ({"failed": 1}, "failed"),
        ({"active": 2}, "waiting"),
    ],
)
def test_argo_example_tfjob_log_selector(workers: dict[str, int], outcome: str) -> None:
    # examples/k8s-resource-log-selector.yaml (a TFJob): = 2 succeeded / > 0 failed on replicaStatuses.Worker
    job = {"status": {"replicaStatuses": {"Worker": workers}}}
    success, failure = "status.replicaStatuses.Worker.succeeded = 2", "status.replicaStatuses.Worker.failed > 0"
    assert resource_outcome(job, success, failure) == outcome


@pytest.mark.parametrize(
    ("phase", "outcome"),
    [
        ("Succeeded", "succeeded"),
        ("Failed", "failed"),
        ("Error", "failed"),
        ("Running", "waiting"),
        (None, "waiting"),
    ],
)
def test_argo_example_wait_for_workflow(phase: str | None, outcome: str) -> None:
    # examples/k8s-wait-wf.yaml: status.phase == Succeeded / status.phase in (Failed, Error)
    obj = {"status": {"phase": phase}} if phase else {"metadata": {}}
    assert resource_outcome(obj, "status.phase == Succeeded", "status.phase in (Failed, Error)") == outcome


def test_match_conditions_counts_as_argo_does() -> None:
    # numMatched >= len(successReqs): only a failureCondition -> succeeds once it does not match; none -> at once
    assert resource_outcome({"status": {}}, "", "status.failed > 0") == "succeeded"
    assert resource_outcome({"status": {"failed": 1}}, "", "status.failed > 0") == "failed"
    assert resource_outcome({}, "", "") == "succeeded"
    # any failure requirement fails; every success requirement is needed
    failure = "status.replicaStatuses.Chief.failed > 0,status.replicaStatuses.Worker.failed > 0"
    assert resource_outcome({"status": {"replicaStatuses": {"Worker": {"failed": 1}}}}, "x", failure) == "failed"
    assert resource_outcome({"a": "1", "b": "2"}, "a = 1, b = 3") == "waiting"
    assert resource_outcome({"a": "1", "b": "2"}, "a = 1, b notin (3, 4), !c, a") == "succeeded"
    # label semantics: != and notin match a missing key, > does not; gjson reads booleans and null
    assert resource_outcome({}, "status.phase != Failed") == "succeeded"
    assert resource_outcome({}, "status.n < 1") == "waiting"
    assert resource_outcome({"s": {"ok": True, "n": None}}, "s.ok == true, s.n, s.n = ") == "succeeded"
    assert resource_outcome({"items": [{"x": 5}]}, "items.0.x > 4") == "succeeded"


@pytest.mark.parametrize(
    "bad",
    [
        "status.phase >= 1",
        "status.failed > x",
        "status.n > -1",
        "status.phase in Failed",
        "status.phase == a b",
        "status.x/with.bad/slash == 1",
        "status." + "a" * 70 + " == 1",
        "status.phase == has space!",
    ],
)
def test_conditions_argo_would_refuse_are_clear_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="cannot parse condition"):
        parse_requirements(bad)


# when_test.go, TestShouldExecute
TRUE = [
    "foo == foo",
    "'ref/branch/master' == 'ref/branch/master'",
    "foo != bar",
    "1 == 1",
    "1 != 2",
    "1 < 2",
    "1 <= 1",
    "1/2 == 0.5",
    "a < b",
    "(foo == bar) || (foo == foo)",
    "(1 > 0) && (1 < 2)",
    "Error in (Failed, Error)",
    "!(Succeeded in (Failed, Error))",
    "true == true",
]
FALSE = [
    "foo != foo",
    "'ref/branch/master' != 'ref/branch/master'",
    "foo == bar",
    "1 != 1",
    "1 == 2",
    "1 > 2",
    "1 <= 0",
    "1/2 != 0.5",
    "a > b",
    "(foo == bar) || (bar == foo)",
    "(1 > 0) && (11 < 2)",
    "Succeeded in (Failed, Error)",
    "!(Error in (Failed, Error))",
    "false == true",
]


@pytest.mark.parametrize("expr", TRUE)
def test_argo_when_true(expr: str) -> None:
    assert evaluate_when(expr) is True


@pytest.mark.parametrize("expr", FALSE)
def test_argo_when_false(expr: str) -> None:
    assert evaluate_when(expr) is False


def test_when_as_the_model_train_workflow_uses_it() -> None:
    assert evaluate_when("1 != 0") and not evaluate_when("0 != 0") and evaluate_when("true == true")
    assert evaluate_when("Failed != Succeeded") and not evaluate_when("Succeeded != Succeeded")
    for bad in ("1 +", "(1 == 1", "foo", "1 == 1 1", "a & b"):
        with pytest.raises(ConfigError, match="invalid 'when' expression"):
            evaluate_when(bad)


def test_substitution_trims_and_names_what_is_missing() -> None:
    scope = {"workflow.name": "wf-1", "inputs.parameters.job-name": "job"}
    assert substitute("{{workflow.name}}/{{ inputs.parameters.job-name }}", scope) == "wf-1/job"
    with pytest.raises(ConfigError, match=r"failed to resolve \{\{steps.x.outputs.parameters.y\}\}"):
        substitute("{{steps.x.outputs.parameters.y}}", scope, where="serve-model")


def test_tf_config_is_the_v1_operators_format() -> None:
    from mnistkit.rehearsal.tfjob import tf_config

    replicas = {"Chief": 1, "Worker": 2}
    text = tf_config("job", "ns", replicas, "Worker", 1, ports={"Chief": 2222, "Worker": 2222})
    # json.Marshal of TFConfig: cluster (map: keys sorted), task {type, index}, environment "cloud"
    assert text == json.dumps(
        {
            "cluster": {
                "chief": ["job-chief-0.ns.svc:2222"],
                "worker": ["job-worker-0.ns.svc:2222", "job-worker-1.ns.svc:2222"],
            },
            "task": {"type": "worker", "index": 1},
            "environment": "cloud",
        },
        separators=(",", ":"),
    )
    assert tf_config("job", "ns", {"Chief": 1}, "Chief", 0, ports={"Chief": 2222}) == ""  # not distributed
