"""Provider faults on real sockets (fake OpenAI-compatible primary, fake Anthropic fallback):
half the calls answering 500, calls hanging until the timeout, 429 storms with Retry-After,
connections cut mid-stream. The fault starts a quarter into the load and lifts at three
quarters; every request completes (on a retry or the fallback) or fails with a retryable code
(a provider fault is transient: the client may try again), and the fallback did serve. The
fallback words its answers differently, as another model would: a stream cut after some text
and restarted there would reach its client as an error, so the cut streams must be continued
(no client-visible failure at all)."""

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from tests.fakes.llm_servers import AnthropicFake, Fault, FaultPlan, OpenAIFake
from tests.faults.case import RATE, Rig, Strike, chat_load, run_case
from tests.faults.load import LoadShape
from tests.integration.foundation_setup import ENV, FALLBACK_KEY, PRIMARY_KEY, write_config

DURATION_S = 10.0
PROMPT_WORDS = 30  # answers of ~200 characters: text has reached the client when a cut comes
ANSWER_WORDS = PROMPT_WORDS + 3  # "echo: hello <id>" and the prompt's words


@dataclass(frozen=True)
class ProviderFault:
    case: str
    primary: FaultPlan
    fallback: FaultPlan = field(default_factory=FaultPlan)
    stream: bool = False


FAULTS = [
    ProviderFault("provider: 50% 5xx", FaultPlan(fault=Fault.SERVER_ERROR, rate=0.5)),
    ProviderFault("provider: timeouts", FaultPlan(fault=Fault.HANG)),
    ProviderFault(
        "provider: 429 storm",
        FaultPlan(fault=Fault.RATE_LIMITED, retry_after="1"),
        FaultPlan(fault=Fault.RATE_LIMITED, rate=0.5, retry_after="1"),
    ),
    ProviderFault(
        "provider: drops mid-stream",
        FaultPlan(fault=Fault.DROP, rate=0.5, drop_after=ANSWER_WORDS - 3),
        stream=True,
    ),
]


@pytest.fixture
def fakes() -> Iterator[tuple[OpenAIFake, AnthropicFake]]:
    primary, fallback = OpenAIFake(PRIMARY_KEY), AnthropicFake(FALLBACK_KEY, voice="heard")
    with primary, fallback:
        yield primary, fallback


@pytest.mark.parametrize("fault", FAULTS, ids=[f.case for f in FAULTS])
def test_provider_fault_mid_load(
    fault: ProviderFault, rig: Rig, fakes: tuple[OpenAIFake, AnthropicFake], tmp_path: Path
) -> None:
    primary, fallback = fakes
    config = write_config(tmp_path / "config", primary.base_url, fallback.base_url)
    rig = replace(rig, env={**ENV, "FOUNDATION_CONFIG_DIR": str(config)})

    def provider_fault(strike: Strike) -> None:
        strike.at_fraction(0.25)
        primary.set_plan(fault.primary)
        fallback.set_plan(fault.fallback)
        strike.at_fraction(0.75)
        primary.set_plan(FaultPlan())
        fallback.set_plan(FaultPlan())

    words = PROMPT_WORDS if fault.stream else 0
    shape = LoadShape(RATE, DURATION_S, chat_load(stream=fault.stream, words=words))
    tally = run_case(fault.case, rig, provider_fault, shape=shape)
    assert tally.outcomes["completed via fallback"] > 0
    if fault.stream:
        assert tally.client_failures == 0, tally
