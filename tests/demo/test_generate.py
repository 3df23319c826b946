from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from tokenops.demo import DEFAULT_END, DemoOrg, generate_org
from tokenops.demo.org import WORKFLOWS
from tokenops.events import TokenUsage
from tokenops.pricing import Priced, Pricer
from tokenops.store.schema import TABLES

SMALL = 0.25  # the `org` fixture's scale (conftest.py)


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def test_same_seed_gives_byte_identical_tables(org: DemoOrg) -> None:
    again = generate_org(7, scale=SMALL)
    for name, table in org.tables().items():
        assert _ipc(table) == _ipc(again.tables()[name]), name
    assert again.truth == org.truth


def test_another_seed_gives_another_organisation(org: DemoOrg) -> None:
    other = generate_org(8, scale=SMALL)
    assert not other.usage_events.equals(org.usage_events)
    assert other.people.column("person_id").to_pylist() != org.people.column("person_id").to_pylist()
    shared = set(other.usage_events.column("request_id").to_pylist()) & set(
        org.usage_events.column("request_id").to_pylist()
    )
    assert not shared


def test_tables_have_the_ledger_schemas(org: DemoOrg) -> None:
    for name, table in org.tables().items():
        assert table.schema == TABLES[name].arrow_schema, name
        assert table.num_rows > 0, name


def test_roster_has_about_sixty_people_in_six_teams_at_realistic_costs(org: DemoOrg) -> None:
    people = org.people.to_pylist()
    assert 55 <= len(people) <= 65
    assert len({p["person_id"] for p in people}) == len(people)
    assert {p["team"] for p in people} == {"support", "sales", "engineering", "marketing", "finance", "legal-ops"}
    assert all(Decimal(45) <= p["loaded_hourly_cost"] <= Decimal(140) for p in people)
    assert all(p["name"] and p["role"] and p["start_date"] for p in people)
    assert 10 <= len(WORKFLOWS) <= 12
    assert len(set(org.usage_events.column("workflow").to_pylist())) == len(WORKFLOWS)


def test_volume_scales_to_a_few_hundred_thousand_events_by_default(org: DemoOrg) -> None:
    # volume is linear in `scale` apart from the incidents' fixed ~1,500 calls
    assert 150_000 * SMALL <= org.truth.events <= 400_000 * SMALL + 2_000


def test_events_lie_in_the_window_after_each_users_adoption(org: DemoOrg) -> None:
    truth = org.truth
    ts = org.usage_events.column("ts")
    start = datetime.combine(truth.ai_start, datetime.min.time())
    assert pc.min(ts).as_py() >= start
    assert pc.max(ts).as_py() < datetime.combine(DEFAULT_END + timedelta(days=1), datetime.min.time())
    first_use = org.usage_events.group_by("user_id").aggregate([("ts", "min")]).to_pylist()
    assert {r["user_id"] for r in first_use} <= set(truth.adopters)
    for row in first_use:
        assert row["ts_min"].date() >= truth.adoption_dates[row["user_id"]]


def test_every_event_is_attributed(org: DemoOrg) -> None:
    events = org.usage_events
    for column in ("api_key_id", "user_id", "team", "feature", "workflow", "task_run_id", "step", "tags"):
        assert events.column(column).null_count == 0, column
    assert set(events.column("source").to_pylist()) == {"demo"}
    facing = {w.name for w in WORKFLOWS if w.customer_facing}
    rows = events.select(["workflow", "customer"]).to_pylist()
    assert all((r["customer"] is not None) == (r["workflow"] in facing) for r in rows)
    loops = events.filter(pc.equal(events.column("step"), "act"))
    assert loops.column("iteration").null_count == 0
    assert pc.max(loops.column("iteration")).as_py() >= 100  # the runaway loop


def test_weekdays_and_working_hours_dominate_and_usage_grows(org: DemoOrg) -> None:
    ts = org.usage_events.column("ts").to_pylist()
    days = [t.date() for t in ts]
    per_day = Counter(days)
    weekday = [n for d, n in per_day.items() if d.weekday() < 5]
    weekend = [n for d, n in per_day.items() if d.weekday() >= 5]
    assert sum(weekday) / len(weekday) > 5 * sum(weekend) / len(weekend)
    assert sum(8 <= t.hour < 18 for t in ts) / len(ts) > 0.7
    start = org.truth.ai_start
    first = sum(1 for d in days if d < start + timedelta(days=14))
    last = sum(1 for d in days if d > org.truth.end - timedelta(days=14))
    assert last > 2 * first


def test_unpriced_private_model_calls_have_null_costs(org: DemoOrg) -> None:
    events = org.usage_events
    private = events.filter(pc.equal(events.column("provider"), "self-hosted"))
    assert private.num_rows > 0
    assert private.num_rows == org.truth.unpriced_events
    assert all(private.column("unpriced").to_pylist())
    assert set(private.column("price_source").to_pylist()) == {"unpriced"}
    for column in ("cost_input", "cost_cache_read", "cost_cache_write", "cost_output", "cost_other", "cost_total"):
        assert private.column(column).null_count == private.num_rows
    priced = events.filter(pc.invert(events.column("unpriced")))
    assert priced.column("cost_total").null_count == 0
    assert priced.num_rows + private.num_rows == events.num_rows


def test_stored_costs_equal_pricer_on_a_random_sample(org: DemoOrg) -> None:
    rows = org.usage_events.to_pylist()
    sample = random.Random(11).sample(rows, 600)
    sample += [r for r in rows if r["batch"]][-50:] + [r for r in rows if r["cache_write_1h_tokens"]][:50]
    pricer = Pricer()
    q = Decimal("1e-12")
    for r in sample:
        usage = TokenUsage(
            r["input_tokens"],
            r["cache_read_tokens"],
            r["cache_write_tokens"],
            r["cache_write_1h_tokens"],
            r["output_tokens"],
            r["reasoning_tokens"],
        )
        got = pricer.price(r["model"], usage, provider=r["provider"], ts=r["ts"].replace(tzinfo=UTC), batch=r["batch"])
        assert r["price_source"] == got.source
        if not isinstance(got, Priced):
            assert r["unpriced"] and r["cost_total"] is None
            continue
        c = got.cost
        want = [c.input, c.cache_read, c.cache_write, c.output, c.other, c.total]
        stored = [r[f"cost_{k}"] for k in ("input", "cache_read", "cache_write", "output", "other", "total")]
        assert stored == [w.quantize(q) for w in want], r["request_id"]


def test_token_shapes_follow_the_models(org: DemoOrg) -> None:
    rows = org.usage_events.select(
        ["provider", "model", "reasoning_tokens", "cache_write_tokens", "output_tokens", "status", "error_type"]
    ).to_pylist()
    assert {r["model"] for r in rows if r["reasoning_tokens"]} <= {"o4-mini-2025-04-16", "o3-mini-2025-01-31"}
    assert {r["provider"] for r in rows if r["cache_write_tokens"]} == {"anthropic"}
    errors = [r for r in rows if r["status"] == "error"]
    assert errors and all(r["output_tokens"] == 0 and r["error_type"] in {"429", "500", "timeout"} for r in errors)
    assert all(r["error_type"] is None for r in rows if r["status"] == "ok")
    assert len({r["provider"] for r in rows}) >= 4


def test_task_runs_group_calls_and_outcomes_follow_completed_runs(org: DemoOrg) -> None:
    runs = {r["task_run_id"]: r for r in org.task_runs.to_pylist()}
    assert set(org.usage_events.column("task_run_id").to_pylist()) == set(runs)
    assert {r["status"] for r in runs.values()} == {"completed", "failed", "abandoned"}
    links = org.outcome_task_runs.to_pylist()
    assert len(links) == org.outcomes.num_rows
    assert all(runs[link["task_run_id"]]["status"] == "completed" for link in links)

    def failure(workflow: str) -> float:
        mine = [r for r in runs.values() if r["workflow"] == workflow]
        return sum(1 for r in mine if r["status"] == "failed") / len(mine)

    assert failure("coding_agent") > 3 * failure("ticket_triage")
    values = {r["outcome_type"]: r["value"] for r in org.outcomes.to_pylist()}
    assert values["ticket_resolved"] == Decimal(42) and values["lead_qualified"] == Decimal(150)
    completed = sum(r["status"] == "completed" and r["workflow"] == "support_qa" for r in runs.values())
    won = sum(r["workflow"] == "support_qa" for r in org.outcomes.to_pylist())
    assert abs(won / completed - org.truth.workflows["support_qa"].conversion_rate) < 0.05


def test_runaway_loop_is_one_run_of_hundreds_of_calls_within_two_hours(org: DemoOrg) -> None:
    (incident,) = [i for i in org.truth.incidents if i.kind == "runaway_loop"]
    assert incident.task_run_id is not None and incident.end is not None
    calls = org.usage_events.filter(pc.equal(org.usage_events.column("task_run_id"), incident.task_run_id))
    assert calls.num_rows == incident.calls >= 100
    assert incident.end - incident.start < timedelta(hours=2)
    assert pc.sum(calls.column("cost_total")).as_py() == incident.cost
    per_run = org.usage_events.group_by("task_run_id").aggregate([("request_id", "count")])
    assert pc.max(per_run.column("request_id_count")).as_py() == incident.calls


def test_prompt_change_triples_the_workflows_input_tokens(org: DemoOrg) -> None:
    (incident,) = [i for i in org.truth.incidents if i.kind == "prompt_change"]
    events = org.usage_events
    qa = events.filter(
        pc.and_(
            pc.equal(events.column("workflow"), incident.workflow),
            pc.and_(pc.equal(events.column("operation"), "chat"), pc.equal(events.column("status"), "ok")),
        )
    )
    after = pc.greater_equal(qa.column("ts"), pa.scalar(incident.start.replace(tzinfo=None), pa.timestamp("us")))
    before_mean = pc.mean(qa.filter(pc.invert(after)).column("input_tokens")).as_py()
    after_mean = pc.mean(qa.filter(after).column("input_tokens")).as_py()
    assert 2.6 < after_mean / before_mean < 3.4
    assert incident.magnitude == 3.0


def test_user_spike_is_one_afternoon_of_one_person(org: DemoOrg) -> None:
    (incident,) = [i for i in org.truth.incidents if i.kind == "user_spike"]
    assert incident.user_id is not None and incident.end is not None
    events = org.usage_events
    mine = pc.and_(
        pc.equal(events.column("user_id"), incident.user_id), pc.equal(events.column("workflow"), incident.workflow)
    )
    day = [t.date() for t in events.filter(mine).column("ts").to_pylist()]
    spike_day = incident.start.date()
    assert day.count(spike_day) == incident.calls
    assert incident.magnitude >= 4
    others = [day.count(d) for d in set(day) if d != spike_day and d.weekday() < 5]
    assert max(others) < incident.calls


def test_truth_totals_match_the_table(org: DemoOrg) -> None:
    assert org.truth.events == org.usage_events.num_rows
    assert pc.sum(org.usage_events.column("cost_total")).as_py() == org.truth.total_cost
    assert org.truth.total_cost > 0
