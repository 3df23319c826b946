"""The demo organisation as data: teams, roles, seat tools, models and workflow shapes, then the roster.

Everything a reader might want to tweak (a workflow's models, token sizes, conversion rate,
true time saving) is a literal in this module; the generators only draw from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

import numpy as np

TEAMS: tuple[str, ...] = ("support", "sales", "engineering", "marketing", "finance", "legal-ops")
TEAM_SIZES: tuple[int, ...] = (13, 10, 13, 8, 8, 8)
NON_ADOPTER_SHARE = 0.2
"""Share of each team that never uses AI: the control group for difference-in-differences."""

# role, weight, loaded hourly cost range in USD
ROLES: dict[str, tuple[tuple[str, float, int, int], ...]] = {
    "support": (("Support agent", 6, 45, 60), ("Senior support agent", 3, 55, 72), ("Support lead", 1, 68, 88)),
    "sales": (("Sales development rep", 4, 50, 72), ("Account executive", 4, 72, 110), ("Sales manager", 1, 98, 130)),
    "engineering": (
        ("Software engineer", 5, 85, 115),
        ("Senior software engineer", 4, 105, 135),
        ("Staff engineer", 1, 122, 140),
        ("Engineering manager", 1, 115, 140),
    ),
    "marketing": (("Marketing specialist", 4, 55, 80), ("Content lead", 2, 70, 95), ("Growth manager", 1, 82, 108)),
    "finance": (("Accountant", 4, 55, 80), ("Financial analyst", 3, 68, 92), ("Finance manager", 1, 98, 125)),
    "legal-ops": (("Paralegal", 3, 55, 75), ("Contract manager", 3, 80, 110), ("Legal counsel", 2, 112, 140)),
}

SEAT_PRICES: dict[str, Decimal] = {
    "github-copilot": Decimal("19.00"),
    "chatgpt-team": Decimal("30.00"),
    "claude-team": Decimal("30.00"),
}
TEAM_SEATS: dict[str, tuple[str, ...]] = {
    "support": ("claude-team",),
    "sales": ("chatgpt-team",),
    "engineering": ("github-copilot", "claude-team"),
    "marketing": ("chatgpt-team",),
    "finance": ("chatgpt-team",),
    "legal-ops": ("claude-team",),
}

FIRST_NAMES = (
    "Ana Ben Chloe Dmitri Elena Farid Grace Hiro Ines Jonas Keiko Liam Maya Nikhil Olga Pablo Quinn Rosa Sami "
    "Tara Umar Vera Wen Xavier Yara Zoe Adele Bruno Carmen Diego Esther Felix Greta Hugo Ivy Jamal Kira Luca "
    "Mina Noah Omar Priya Rafael Sofia Tomas Ulla Victor Wanda Yusuf Zara Aiden Bea Cyrus Dana Emil Freya "
    "Gabriel Hana Isaac Julia Kofi Lena Marco Nadia Oscar Paula Rhea Stefan Thea Ugo Vikram Wilma"
).split()
LAST_NAMES = (
    "Silva Novak Okafor Tanaka Larsen Haddad Moreau Kowalski Rossi Schmidt Nakamura Fernandez Ivanova Mensah "
    "Dubois Jensen Kaur Lopez Murphy Nguyen Petrov Quist Rahman Santos Tran Ueda Varga Weber Yilmaz Zhang "
    "Abbott Brennan Castillo Dias Eriksen Fischer Garcia Horvat Ito Jovanovic Kim Lindqvist Mendes Nilsen "
    "Ortiz Park Reyes Suzuki Torres Vasquez Wright Young Berg Costa Evans Hughes Keller Moller Ng Pereira "
    "Achebe Bianchi Chen Duarte Engel Fontaine Gupta Halvorsen Iyer Janssen Kovacs Lund"
).split()

Caching = Literal["explicit", "auto", "none"]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model the demo calls, as the provider reports it."""

    key: str
    """Short name workflows refer to."""
    provider: str
    """genai-prices provider id, or an org-defined one for private models."""
    model: str
    """Model that served the call (`gen_ai.response.model`), often a dated snapshot."""
    requested: str | None
    """Alias the caller asked for, when it differs from `model`."""
    reasoning: bool = False
    """Emits hidden reasoning tokens (counted inside output)."""
    caching: Caching = "auto"
    """`explicit` cache writes and reads (Anthropic), `auto` reads only (OpenAI, Google), or none."""
    embedding: bool = False
    """An embeddings model: input only."""
    latency_ms: float = 400.0
    """Time to first token, roughly."""
    ms_per_token: float = 12.0
    """Decode speed."""


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("gpt-4o-mini", "openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini", latency_ms=300, ms_per_token=8),
    ModelSpec("gpt-4o", "openai", "gpt-4o-2024-08-06", "gpt-4o", latency_ms=450, ms_per_token=12),
    ModelSpec("gpt-4.1", "openai", "gpt-4.1-2025-04-14", "gpt-4.1", latency_ms=450, ms_per_token=11),
    ModelSpec("gpt-4.1-mini", "openai", "gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", latency_ms=320, ms_per_token=8),
    ModelSpec("o4-mini", "openai", "o4-mini-2025-04-16", "o4-mini", reasoning=True, latency_ms=900, ms_per_token=7),
    ModelSpec("o3-mini", "openai", "o3-mini-2025-01-31", "o3-mini", reasoning=True, latency_ms=900, ms_per_token=7),
    ModelSpec("text-embedding-3-small", "openai", "text-embedding-3-small", None, caching="none", embedding=True,
              latency_ms=90, ms_per_token=0),
    ModelSpec("claude-3-5-haiku", "anthropic", "claude-3-5-haiku-20241022", "claude-3-5-haiku-latest",
              caching="explicit", latency_ms=380, ms_per_token=9),
    ModelSpec("claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5",
              caching="explicit", latency_ms=600, ms_per_token=14),
    ModelSpec("claude-opus-4-1", "anthropic", "claude-opus-4-1-20250805", "claude-opus-4-1",
              caching="explicit", latency_ms=900, ms_per_token=25),
    ModelSpec("gemini-2.5-flash", "google", "gemini-2.5-flash", None, latency_ms=350, ms_per_token=5),
    ModelSpec("gemini-2.5-pro", "google", "gemini-2.5-pro", None, latency_ms=800, ms_per_token=10),
    ModelSpec("acme-internal-llm", "self-hosted", "acme-internal-llm", None, caching="none",
              latency_ms=250, ms_per_token=15),
)  # fmt: skip
MODEL_INDEX: dict[str, int] = {m.key: i for i, m in enumerate(MODELS)}


@dataclass(frozen=True, slots=True)
class Step:
    """One model call of a workflow, with the median size of its prompt and answer."""

    name: str
    """Step name recorded in `usage_events.step`."""
    input_tokens: int
    """Median prompt tokens (log-normal)."""
    output_tokens: int
    """Median generated tokens, reasoning included (log-normal)."""
    model: str | None = None
    """Model key when the step always uses one model; None uses the run's model."""
    operation: str = "chat"
    """`gen_ai.operation.name`."""
    input_sigma: float = 0.45
    """Log-normal spread of the prompt."""
    output_sigma: float = 0.55
    """Log-normal spread of the answer."""


@dataclass(frozen=True, slots=True)
class Workflow:
    """A kind of task and the shape of the model calls one run of it makes.

    A run makes the `prefix` calls, then `loop` once per iteration, then `suffix` (completed runs
    only: failed and abandoned runs stop before the end).
    """

    name: str
    """Workflow name (`usage_events.workflow`)."""
    team: str | None
    """Owning team; None when people of every team run it."""
    feature: str
    """Product feature (`usage_events.feature`) and the tool named in time entries."""
    activity: str
    """Time-tracking category the work is booked under."""
    models: tuple[tuple[str, float], ...]
    """Model keys a run picks from, with weights."""
    prefix: tuple[Step, ...]
    """Calls made once at the start."""
    loop: tuple[Step, ...] = ()
    """Calls made once per iteration (plan/retrieve/act/validate agents)."""
    suffix: tuple[Step, ...] = ()
    """Calls made once at the end of a completed run."""
    extra_iterations: float = 0.0
    """Mean loop iterations beyond the first (Poisson); loops run at least once when present."""
    context_growth: float = 0.0
    """Prompt growth per iteration, as a share of the step's size (agents accumulate history)."""
    runs_per_day: float = 1.0
    """Runs per fully ramped adopter per working day, at scale 1."""
    customer_facing: bool = False
    """Runs serve an external customer (recorded in `customer`)."""
    app_key: bool = False
    """Calls go through the feature's shared virtual key rather than the person's own."""
    batch: bool = False
    """Calls go through the provider's batch API."""
    cache_1h: bool = False
    """Anthropic cache writes use the one-hour TTL."""
    error_rate: float = 0.01
    """Share of calls that fail (429, 500, timeout) and are retried."""
    failure_rate: float = 0.02
    """Share of runs that fail."""
    abandon_rate: float = 0.02
    """Share of runs that are abandoned."""
    outcome_type: str | None = None
    """Business outcome a completed run may produce."""
    outcome_value: Decimal | None = None
    """USD value of one outcome."""
    conversion: float = 0.0
    """Probability that a completed run yields the outcome."""
    outcome_delay_hours: float = 1.0
    """Mean delay between the run's end and the outcome."""
    saving: float = 0.0
    """True share of task time saved when the task is done with AI."""
    task_hours: float = 1.0
    """Median length of one time-entry block of this activity, without AI."""
    daily_share: float = 0.6
    """Probability that a team member books a block of this activity on a working day."""
    gap_ms: float = 1500.0
    """Median pause between calls of a run."""
    tags: tuple[tuple[str, str], ...] = ()
    """Tags recorded on every call."""
    month_end: bool = False
    """Runs cluster around month end."""


WORKFLOWS: tuple[Workflow, ...] = (
    Workflow("ticket_triage", "support", "helpdesk-triage", "ticket triage",
             (("gpt-4o-mini", 0.88), ("gemini-2.5-flash", 0.12)),
             prefix=(Step("classify", 650, 12, input_sigma=0.35, output_sigma=0.4),),
             runs_per_day=60, customer_facing=True, app_key=True, error_rate=0.006, failure_rate=0.004,
             abandon_rate=0.0, saving=0.35, task_hours=1.0, daily_share=0.8, tags=(("app", "helpdesk"),)),
    Workflow("support_qa", "support", "helpdesk-answers", "customer questions",
             (("claude-3-5-haiku", 0.6), ("gpt-4.1-mini", 0.4)),
             prefix=(Step("embed_query", 60, 0, "text-embedding-3-small", "embeddings", 0.4, 0.0),
                     Step("answer", 9000, 320, input_sigma=0.4)),
             runs_per_day=30, customer_facing=True, app_key=True, error_rate=0.01, failure_rate=0.02,
             abandon_rate=0.04, outcome_type="ticket_resolved", outcome_value=Decimal(42), conversion=0.55,
             outcome_delay_hours=0.7, saving=0.30, task_hours=1.5, daily_share=0.9, gap_ms=300,
             tags=(("app", "helpdesk"), ("prompt_version", "v7"))),
    Workflow("refund_agent", "support", "refund-bot", "refund handling", (("claude-sonnet-4-5", 1.0),),
             prefix=(Step("plan", 3500, 250),),
             loop=(Step("retrieve", 2500, 120, "claude-3-5-haiku"), Step("act", 4000, 300),
                   Step("validate", 3000, 80, "claude-3-5-haiku")),
             suffix=(Step("respond", 5000, 350),),
             extra_iterations=1.3, context_growth=0.35, runs_per_day=7, customer_facing=True, app_key=True,
             error_rate=0.02, failure_rate=0.10, abandon_rate=0.05, outcome_type="ticket_resolved",
             outcome_value=Decimal(42), conversion=0.7, outcome_delay_hours=0.5, saving=0.45, task_hours=1.0,
             daily_share=0.6, gap_ms=800, tags=(("app", "helpdesk"), ("agent", "refunds"))),
    Workflow("lead_enrichment", "sales", "crm-enrichment", "lead research",
             (("gpt-4.1", 0.7), ("gemini-2.5-flash", 0.3)),
             prefix=(Step("extract", 2200, 250, "gpt-4o-mini"), Step("enrich", 6000, 600),
                     Step("score", 1800, 60, "gpt-4o-mini")),
             runs_per_day=18, customer_facing=True, error_rate=0.01, failure_rate=0.03, abandon_rate=0.03,
             outcome_type="lead_qualified", outcome_value=Decimal(150), conversion=0.18,
             outcome_delay_hours=72, saving=0.40, task_hours=1.5, daily_share=0.9, gap_ms=2000,
             tags=(("app", "crm"),)),
    Workflow("code_review", "engineering", "pr-review-bot", "code review",
             (("claude-sonnet-4-5", 0.75), ("gpt-4.1", 0.25)),
             prefix=(Step("summarise_diff", 14000, 500, input_sigma=0.8), Step("review", 22000, 1400, input_sigma=0.8),
                     Step("security_check", 9000, 600, "o4-mini")),
             runs_per_day=7, app_key=True, error_rate=0.015, failure_rate=0.03, abandon_rate=0.02,
             outcome_type="pr_merged", outcome_value=Decimal(60), conversion=0.62, outcome_delay_hours=20,
             saving=0.20, task_hours=1.2, daily_share=0.7, gap_ms=400, tags=(("app", "github"),)),
    Workflow("coding_agent", "engineering", "ide-agent", "feature development",
             (("claude-sonnet-4-5", 0.8), ("gpt-4.1", 0.2)),
             prefix=(Step("plan", 6000, 700, "claude-opus-4-1"),),
             loop=(Step("read_code", 9000, 150), Step("edit", 12000, 900), Step("run_tests", 7000, 120)),
             suffix=(Step("summarise", 10000, 400),),
             extra_iterations=3.0, context_growth=0.25, runs_per_day=5, error_rate=0.025, failure_rate=0.14,
             abandon_rate=0.08, outcome_type="issue_closed", outcome_value=Decimal(220), conversion=0.38,
             outcome_delay_hours=8, saving=0.30, task_hours=2.5, daily_share=0.9, gap_ms=1200, cache_1h=True,
             tags=(("app", "ide"), ("agent", "coder"))),
    Workflow("campaign_content", "marketing", "content-studio", "campaign content",
             (("gpt-4.1", 0.5), ("claude-sonnet-4-5", 0.3), ("gemini-2.5-pro", 0.2)),
             prefix=(Step("outline", 2500, 600), Step("draft", 4500, 3500), Step("polish", 6000, 2800)),
             runs_per_day=6, error_rate=0.01, failure_rate=0.02, abandon_rate=0.08,
             outcome_type="content_published", outcome_value=Decimal(120), conversion=0.45,
             outcome_delay_hours=30, saving=0.35, task_hours=2.0, daily_share=0.8, gap_ms=20000,
             tags=(("app", "content-studio"),)),
    Workflow("month_end_report", "finance", "fpna-reports", "month-end reporting",
             (("o4-mini", 0.6), ("o3-mini", 0.4)),
             prefix=(Step("gather", 12000, 800, "gpt-4.1-mini"), Step("analyse", 25000, 6000),
                     Step("write", 18000, 9000)),
             runs_per_day=1.2, error_rate=0.015, failure_rate=0.04, abandon_rate=0.04,
             outcome_type="report_delivered", outcome_value=Decimal(300), conversion=0.8,
             outcome_delay_hours=12, saving=0.25, task_hours=3.0, daily_share=0.35, gap_ms=5000,
             month_end=True, tags=(("app", "fpna"),)),
    Workflow("invoice_extraction", "finance", "ap-automation", "invoice processing",
             (("gemini-2.5-flash", 0.8), ("acme-internal-llm", 0.2)),
             prefix=(Step("extract", 3200, 450, input_sigma=0.3),),
             runs_per_day=35, app_key=True, batch=True, error_rate=0.008, failure_rate=0.02, abandon_rate=0.0,
             outcome_type="invoice_processed", outcome_value=Decimal(6), conversion=0.93,
             outcome_delay_hours=1, saving=0.50, task_hours=1.0, daily_share=0.8, tags=(("app", "ap"),)),
    Workflow("contract_review", "legal-ops", "contract-desk", "contract review",
             (("claude-opus-4-1", 0.5), ("claude-sonnet-4-5", 0.5)),
             prefix=(Step("ingest", 30000, 900, input_sigma=0.6),),
             loop=(Step("clause_check", 9000, 500),),
             suffix=(Step("risk_summary", 14000, 1600),),
             extra_iterations=3.0, runs_per_day=3, error_rate=0.01, failure_rate=0.03, abandon_rate=0.05,
             outcome_type="contract_reviewed", outcome_value=Decimal(250), conversion=0.85,
             outcome_delay_hours=24, saving=0.30, task_hours=2.5, daily_share=0.8, gap_ms=1000, cache_1h=True,
             tags=(("app", "contract-desk"),)),
    Workflow("meeting_summary", None, "meeting-notes", "meeting notes",
             (("gemini-2.5-flash", 0.6), ("gpt-4o-mini", 0.4)),
             prefix=(Step("summarise", 7000, 450),),
             runs_per_day=1.5, error_rate=0.01, failure_rate=0.01, abandon_rate=0.01, saving=0.5,
             task_hours=0.5, daily_share=0.5, tags=(("app", "meetings"),)),
)  # fmt: skip
WORKFLOW_INDEX: dict[str, int] = {w.name: i for i, w in enumerate(WORKFLOWS)}

NON_AI_ACTIVITIES: tuple[tuple[str, float, float], ...] = (("meetings", 1.5, 0.9), ("admin", 0.75, 0.7))
"""(activity, median hours, daily share) of work no workflow covers, booked by everyone."""


@dataclass(frozen=True, slots=True)
class Window:
    """The demo's calendar: a baseline without AI, then the AI period ending on `end`."""

    end: date
    """Last day of data."""
    days: int
    """Days of AI usage, ending on `end`."""
    baseline_days: int
    """Days before AI adoption (time entries only)."""

    @property
    def ai_start(self) -> date:
        """First day of the AI period (day 0)."""
        return self.end - timedelta(days=self.days - 1)

    @property
    def baseline_start(self) -> date:
        """First day of the baseline."""
        return self.ai_start - timedelta(days=self.baseline_days)

    @property
    def start_us(self) -> int:
        """Start of day 0, microseconds since the Unix epoch."""
        return (self.ai_start - date(1970, 1, 1)).days * DAY_US

    @property
    def end_us(self) -> int:
        """Last microsecond of the data."""
        return self.start_us + self.days * DAY_US - 1

    def weekdays(self, first: int, count: int) -> np.ndarray:
        """Weekday (0 = Monday) of `count` days from day `first` (negative = baseline)."""
        return (self.ai_start.weekday() + first + np.arange(count)) % 7


DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True)
class Roster:
    """The people of one seeded organisation, as parallel arrays (index = person)."""

    person_ids: tuple[str, ...]
    """Stable ids (work e-mail addresses)."""
    names: tuple[str, ...]
    """Display names."""
    roles: tuple[str, ...]
    """Job roles."""
    team: np.ndarray
    """int index into TEAMS."""
    hourly_cents: np.ndarray
    """Loaded hourly cost in cents (int64)."""
    start_dates: tuple[date, ...]
    """Employment start dates."""
    adopt_day: np.ndarray
    """Day of the AI period (0-based) each person starts using AI; -1 for non-adopters."""
    intensity: np.ndarray
    """How heavily each person uses AI relative to their team (log-normal around 1)."""
    speed: np.ndarray
    """How long each person takes over tasks relative to their team (log-normal around 1)."""
    seats: tuple[tuple[int, str, int | None], ...]
    """(person index, tool, last paid day of the AI period or None)."""

    def team_name(self, person: int) -> str:
        """Team of one person."""
        return TEAMS[int(self.team[person])]


def build_roster(seed: int, ai_start: date, days: int) -> Roster:
    """Draw the people, their adoption of AI and their seats from `seed` alone."""
    rng = np.random.default_rng([seed, 1])
    sizes = [max(3, n + int(j)) for n, j in zip(TEAM_SIZES, rng.integers(-1, 2, len(TEAMS)), strict=True)]
    total = sum(sizes)
    firsts = rng.permutation(len(FIRST_NAMES))[:total]
    lasts = rng.permutation(len(LAST_NAMES))[:total]
    names = tuple(f"{FIRST_NAMES[f]} {LAST_NAMES[s]}" for f, s in zip(firsts, lasts, strict=True))
    person_ids = tuple(n.lower().replace(" ", ".") + "@acme.example" for n in names)
    team = np.repeat(np.arange(len(TEAMS)), sizes)
    roles: list[str] = []
    cents = np.empty(total, dtype=np.int64)
    adopt_day = np.empty(total, dtype=np.int64)
    for t, name in enumerate(TEAMS):
        members = np.flatnonzero(team == t)
        options = ROLES[name]
        weights = np.array([o[1] for o in options], dtype=float)
        picks = rng.choice(len(options), size=len(members), p=weights / weights.sum())
        for i, pick in zip(members, picks, strict=True):
            role, _, low, high = options[pick]
            roles.append(role)
            cents[i] = int(rng.integers(low * 100, high * 100 + 1))
        # a pilot group adopts on launch day; the rest trickle in over the first ~8 weeks
        days_in = rng.integers(1, max(2, min(days, 56)), len(members))
        days_in[rng.random(len(members)) < 0.3] = 0
        days_in[0] = 0
        non = 1 + rng.permutation(len(members) - 1)[: max(1, round(NON_ADOPTER_SHARE * len(members)))]
        days_in[non] = -1
        adopt_day[members] = days_in
    start_dates = tuple(ai_start - timedelta(days=int(d)) for d in rng.integers(120, 3650, total))
    intensity = rng.lognormal(0.0, 0.45, total)
    speed = rng.lognormal(0.0, 0.15, total)
    return Roster(
        person_ids=person_ids,
        names=names,
        roles=tuple(roles),
        team=team,
        hourly_cents=cents,
        start_dates=start_dates,
        adopt_day=adopt_day,
        intensity=intensity,
        speed=speed,
        seats=_seats(rng, team, adopt_day, days),
    )


def _seats(
    rng: np.random.Generator, team: np.ndarray, adopt_day: np.ndarray, days: int
) -> tuple[tuple[int, str, int | None], ...]:
    seats: list[tuple[int, str, int | None]] = []
    cancelled = 0
    for person in range(len(team)):
        tools = TEAM_SEATS[TEAMS[int(team[person])]]
        adopter = adopt_day[person] >= 0
        for rank, tool in enumerate(tools):
            # the first tool is rolled out widely (idle seats included); extra tools go to some
            share = (0.95 if adopter else 0.8) if rank == 0 else 0.4
            if rng.random() >= share:
                continue
            end: int | None = None
            if not adopter and cancelled < 2 and days > 60:
                end, cancelled = 59, cancelled + 1  # a licence clean-up cancels two idle seats
            seats.append((person, tool, end))
    return tuple(seats)
