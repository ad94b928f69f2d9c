"""The JSON Schema shipped in the package: valid draft 2020-12, covering every key the report
writes, and every sample's report (a failed backward's included) validates against it."""
from __future__ import annotations

import copy

import jsonschema  # in the test extra
import pytest

from graphprobe.run.options import RunOptions
from graphprobe.run.script import run_script
from graphprobe.model.schema import json_schema, validate

from conftest import other_samples

SEED = ["case1_sum.py", "case2_backward_twice.py", "case3_mul.py", "case4_numpy.py", "case4b_only_loss2.py"]
OTHERS = other_samples(SEED)


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _untyped_keys(schema: dict, node: dict, value, path: str = "$") -> list[str]:
    """Paths of keys in ``value`` that the schema does not name (additionalProperties aside)."""
    node = _resolve(schema, node)
    out: list[str] = []
    if isinstance(value, dict):
        props = node.get("properties")
        extra = node.get("additionalProperties")
        for k, v in value.items():
            if props is not None and k in props:
                out += _untyped_keys(schema, props[k], v, f"{path}.{k}")
            elif isinstance(extra, dict):  # a map: reaches
                out += _untyped_keys(schema, extra, v, f"{path}.{k}")
            else:
                out.append(f"{path}.{k}")
    elif isinstance(value, list) and "items" in node:
        for v in value:
            out += _untyped_keys(schema, node["items"], v, f"{path}[]")
    return out


def _check(report) -> None:
    d = report.to_dict()
    validate(d)
    schema = json_schema()
    assert _untyped_keys(schema, schema, d) == []


def test_the_schema_is_valid_draft_2020_12():
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["required"]) >= {"schema", "verdict", "losses", "params", "reaches", "cuts", "detached",
                                       "notes", "nodes", "edges"}


@pytest.mark.parametrize("name", SEED)
def test_seed_cases_validate_and_every_key_is_typed(sample_report, name):
    r = sample_report(name)
    if name == "case2_backward_twice.py":  # the failed backward
        assert r.errors and r.errors[0]["kind"] == "backward_twice"
    _check(r)


@pytest.mark.slow
@pytest.mark.parametrize("name", OTHERS)
def test_every_sample_validates(sample_report, name):
    _check(sample_report(name))


FAILING = {
    "no_grad_root": ("import torch\nw = torch.nn.Parameter(torch.ones(2))\n"
                     "with torch.no_grad():\n    loss = (w * 2).sum()\nloss.backward()\n"),
    "script_error": ("import torch\nw = torch.nn.Parameter(torch.ones(2))\n"
                     "(w * 2).sum().backward()\nraise ValueError('after the step')\n"),
}


@pytest.mark.parametrize("kind", sorted(FAILING))
def test_failed_backward_and_script_error_reports_validate(tmp_path, kind):
    script = tmp_path / "s.py"
    script.write_text(FAILING[kind])
    res = run_script(RunOptions(str(script), []))
    assert [e["kind"] for e in res.report.errors] == [kind]
    _check(res.report)


def test_the_schema_rejects_what_is_wrong(sample_report):
    good = sample_report("case4_numpy.py").to_dict()
    validate(good)
    bad_ones = []
    d = copy.deepcopy(good); d["schema"] = 2; bad_ones.append(d)
    d = copy.deepcopy(good); d["cuts"][0]["severity"] = "fatal"; bad_ones.append(d)
    d = copy.deepcopy(good); del d["reaches"]; bad_ones.append(d)
    d = copy.deepcopy(good); d["edges"].append({"source": 0, "target": 1, "kind": "cut"}); bad_ones.append(d)
    d = copy.deepcopy(good); d["nodes"][0]["shape"] = "2x3"; bad_ones.append(d)
    d = copy.deepcopy(good); d["components"][0]["extra"] = 1; bad_ones.append(d)
    for d in bad_ones:
        with pytest.raises(jsonschema.ValidationError):
            validate(d)


def test_the_schema_is_package_data():
    from importlib import resources

    assert resources.files("graphprobe").joinpath("model/schemas/report-1.json").is_file()
