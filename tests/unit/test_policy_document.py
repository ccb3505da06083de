"""The policy as a JSON document: its schema and v1 checked in, `inmail policy show` and `check`,
and every kind of problem a document can have, named on one line."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from contracts.policy import (
    POLICY_V1,
    Enforcement,
    Policy,
    Scheduling,
    TierRules,
    decode_policy,
    encode_policy,
)
from contracts.policy_document import check_document
from inmail import reference
from inmail.cli import main

DOCS = reference.DOCS


def v1() -> dict[str, Any]:
    """Policy v1 as a JSON object, to spoil."""
    document: dict[str, Any] = json.loads(encode_policy(POLICY_V1))
    return document


def lines(document: dict[str, Any] | bytes) -> list[str]:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    return [str(problem) for problem in check_document(data)[1]]


def test_the_committed_schema_and_policy_documents_match_the_code() -> None:
    for name, document in reference.policy_documents().items():
        assert (DOCS / name).read_bytes() == document, f"docs/{name} is stale: run python -m inmail.reference"
    assert set(reference.policy_documents()) == {"policy.schema.json", "policy-v1.json"}


def test_the_schema_is_generated_from_the_structs_and_refuses_unknown_fields() -> None:
    schema = json.loads((DOCS / "policy.schema.json").read_text())
    defs = schema["$defs"]
    assert set(defs) == {"Policy", "TierRules", "Scheduling", "Enforcement"}
    assert defs["Policy"]["additionalProperties"] is False
    assert defs["Enforcement"]["properties"]["period"]["format"] == "duration"
    assert set(defs["Policy"]["properties"]["tiers"]["propertyNames"]["enum"]) == set(POLICY_V1.tiers)


def test_docs_policy_md_explains_every_field() -> None:
    page = (DOCS / "policy.md").read_text()
    for struct in (Policy, TierRules, Scheduling, Enforcement):
        for name in struct.__struct_fields__:
            assert f"| `{name}`" in page, f"docs/policy.md does not explain {struct.__name__}.{name}"


def test_policy_v1_goes_through_its_document_unchanged_and_is_sound() -> None:
    assert decode_policy(encode_policy(POLICY_V1)) == POLICY_V1
    assert check_document(encode_policy(POLICY_V1)) == (POLICY_V1, [])


def test_a_missing_tier_is_named() -> None:
    document = v1()
    del document["tiers"]["recruiter_lite"]
    assert lines(document) == ["tiers.recruiter_lite = missing: every tier needs its rules"]


def test_a_negative_number_or_duration_is_named_wherever_it_is() -> None:
    document = v1()
    document["tiers"]["sales_navigator"]["monthly_allotment"] = -5
    document["refund_window"] = "-P60D"
    document["enforcement"]["min_inmails"] = -1
    found = lines(document)
    assert "tiers.sales_navigator.monthly_allotment = -5: must not be negative" in found
    assert "refund_window = -P60D: must not be negative" in found
    assert "enforcement.min_inmails = -1: must not be negative" in found


def test_a_cap_below_the_monthly_allotment_is_named_with_both_values() -> None:
    document = v1()
    document["tiers"]["recruiter"]["cap"] = 100
    [line] = lines(document)
    assert line.startswith("tiers.recruiter.cap = 100: below the tier's monthly_allotment (150)")


@pytest.mark.parametrize("floor", [1.3, -0.1])
def test_a_rate_floor_outside_0_to_1_is_named(floor: float) -> None:
    document = v1()
    document["enforcement"]["rate_floor"] = floor
    found = lines(document)
    assert f"enforcement.rate_floor = {floor}: a response rate is a fraction between 0 and 1" in found


def test_malformed_json_is_one_problem() -> None:
    assert lines(b'{"version": 2,') == ["(document) = not JSON: Input data was truncated"]
    assert lines(b"[1, 2]") == ["(document) = [1,2]: must be an object (Policy)"]


def test_every_field_of_the_wrong_type_missing_or_unknown_is_named_at_once() -> None:
    document = v1()
    document["version"] = "2"
    document["tiers"]["recruiter"]["cap"] = "600"
    del document["tiers"]["free"]["name"]
    document["tiers"]["premium_career"]["caps"] = 15
    document["tiers"]["gold"] = document["tiers"]["free"]
    document["refund_window"] = "ninety days"
    document["enforcement"]["rate_floor"] = True
    assert sorted(lines(document)) == sorted(
        [
            'version = "2": Expected `int`, got `str`',
            'tiers.recruiter.cap = "600": Expected `int`, got `str`',
            "tiers.free.name = missing: required",
            "tiers.premium_career.caps = 15: not a field of a policy",
            "tiers.gold = present: not a tier (tiers: free, premium_career, premium_business, "
            "sales_navigator, recruiter_lite, recruiter)",
            'refund_window = "ninety days": Invalid ISO8601 duration',
            "enforcement.rate_floor = true: Expected `float`, got `bool`",
        ]
    )


def test_zero_where_a_decision_divides_and_inverted_bounds_are_named() -> None:
    document = v1()
    document["enforcement"]["period"] = "P0D"
    document["bulk_max_recipients"] = 1
    document["tiers"]["free"]["monthly_allotment"] = 3
    document["tiers"]["free"]["cap"] = 3
    found = lines(document)
    assert "enforcement.period = P0D: must be more than zero" in found
    assert "bulk_max_recipients = 1: below bulk_min_recipients (2)" in found
    assert "tiers.free.monthly_allotment = 3: a tier that is not paid cannot spend credits" in found
    assert len(found) == 3


def test_policy_show_prints_v1_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "show"]) == 0
    shown = capsys.readouterr().out
    assert msgspec.json.decode(shown.encode(), type=Policy) == POLICY_V1
    assert main(["policy", "show", "--version", "1"]) == 0
    assert capsys.readouterr().out == shown == (DOCS / "policy-v1.json").read_text()


def test_policy_show_of_an_unknown_version_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "show", "--version", "7"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.strip().splitlines()
    assert "no policy version 7 (known: 1)" in line and "inmail policy show" in line


def test_policy_check_says_ok_or_lists_each_problem_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    document = v1() | {"version": 2}
    document["tiers"]["recruiter"]["cap"] = 450
    good.write_text(json.dumps(document))
    assert main(["policy", "check", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: ok (policy version 2)\n"

    spoilt = copy.deepcopy(document)
    del spoilt["tiers"]["free"]
    spoilt["tiers"]["recruiter"]["cap"] = 100
    bad.write_text(json.dumps(spoilt))
    assert main(["policy", "check", str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{bad}: tiers.free = missing: every tier needs its rules",
        f"{bad}: tiers.recruiter.cap = 100: below the tier's monthly_allotment (150): every refresh would "
        "forfeit credits it just granted",
    ]
    assert main(["policy", "check", str(tmp_path / "absent.json")]) == 2


def test_whatif_refuses_an_unsound_policy_in_one_line_before_reading_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = v1()
    document["tiers"]["recruiter"]["cap"] = 100
    document["refund_window"] = "-P1D"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    # No server listens on port 9: the policy is refused before any connection is tried.
    assert main(["whatif", "--policy", str(bad), "--nats", "nats://127.0.0.1:9"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"inmail: {bad} is not a sound policy: refund_window = -P1D: must not be negative (and 1 more); "
        f"see `inmail policy check {bad}`"
    )
