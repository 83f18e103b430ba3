import itertools

import pytest

from processors.foundation.config import PiiEntity
from processors.foundation.guardrails import PiiFinding, find_pii

ALL: list[PiiEntity] = ["email", "phone", "credit_card", "iban", "us_ssn", "ip_address", "secret"]


def found(text: str, entities: list[PiiEntity] | None = None) -> list[tuple[str, str]]:
    return [(f.entity, text[f.start : f.end]) for f in find_pii(text, entities or ALL)]


def only(entity: PiiEntity, value: str, text: str) -> None:
    assert found(text) == [(entity, value)]


# --- credit cards --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "4222222222222",  # 13-digit Visa
        "5555 5555 5555 4444",
        "2223003122003222",  # Mastercard 2-series
        "3782 822463 10005",  # Amex 4-6-5
        "6011 1111 1111 1117",
        "3530111333300000",  # JCB
        "30569309025904",  # Diners, 14 digits
        "6200000000000005",  # UnionPay
    ],
)
def test_cards_with_valid_luhn_and_known_prefix(card: str) -> None:
    only("credit_card", card, f"pay with {card} today")


@pytest.mark.parametrize(
    "number",
    [
        "4111 1111 1111 1112",  # Luhn fails
        "1234 5678 9012 3452",  # Luhn passes, but no issuer starts with 1
        "4111 1111-1111 1111",  # mixed separators
        "41111111111111111111",  # 20 digits
    ],
)
def test_numbers_that_are_not_cards(number: str) -> None:
    assert found(number, ["credit_card"]) == []


def test_card_length_must_fit_the_issuer() -> None:
    amex_sixteen = "3782822463100052"  # passes Luhn, but Amex numbers have 15 digits
    assert found(amex_sixteen, ["credit_card"]) == []


def test_card_followed_by_other_digits_is_cut_at_a_group_boundary() -> None:
    assert found("card 4111 1111 1111 1111 12 25 cvv 123", ["credit_card"]) == [
        ("credit_card", "4111 1111 1111 1111")
    ]


# --- IBAN ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iban",
    [
        "GB82 WEST 1234 5698 7654 32",
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NO93 8601 1117 947",  # shortest in the table
        "gb82 west 1234 5698 7654 32",  # people type them in lower case
    ],
)
def test_ibans(iban: str) -> None:
    only("iban", iban, f"IBAN: {iban}.")


@pytest.mark.parametrize(
    "text",
    [
        "GB00 WEST 1234 5698 7654 32",  # check digits wrong
        "GB82 WEST 1234 5698 7654 3",  # one character short for GB
        "GB82 WEST 1234 5698 7654 321",  # one too many, glued to the last group
        "XX82 WEST 1234 5698 7654 32",  # not a country in the table
        "GB82  WEST 1234 5698 7654 32",  # double space: not one token
    ],
)
def test_not_ibans(text: str) -> None:
    assert found(text, ["iban"]) == []


def test_iban_does_not_swallow_the_next_word() -> None:
    assert found("to GB82 WEST 1234 5698 7654 32 THEN stop", ["iban"]) == [
        ("iban", "GB82 WEST 1234 5698 7654 32")
    ]


# --- SSN -----------------------------------------------------------------------------------


def test_ssn() -> None:
    only("us_ssn", "078-05-1120", "ssn 078-05-1120")


@pytest.mark.parametrize(
    "ssn",
    ["000-12-3456", "666-12-3456", "900-12-3456", "999-12-3456", "123-00-4567", "123-45-0000"],
)
def test_ssa_rules_reject(ssn: str) -> None:
    assert found(f"ssn {ssn}", ["us_ssn"]) == []


def test_ssn_inside_a_longer_dashed_id_is_not_an_ssn() -> None:
    assert found("part 12-123-45-6789-X", ["us_ssn"]) == []


# --- phone ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "+1 (415) 555-0132",
        "+14155550132",
        "(415) 555-0199",
        "415-555-0123",
        "415.555.0175",
        "1-800-555-0199",
        "+44 20 7946 0958",
        "020 7946 0018",
        "07700 900456",
        "01 23 45 67 89",
        "+49 30 901820",
    ],
)
def test_phones(phone: str) -> None:
    only("phone", phone, f"call {phone} now")


def test_bare_digits_are_a_phone_only_in_phone_context() -> None:
    assert found("call me on 4155550132", ["phone"]) == [("phone", "4155550132")]
    assert found("order 4155550132 shipped", ["phone"]) == []


@pytest.mark.parametrize(
    "text",
    [
        "order #1234567890",
        "in 1999 and 2024",
        "ISBN 978-0-306-40615-7",
        "on 01.02.2024 10:30",
        "2024-01-15T10:30:00Z",
        "call 911",
        "+1 23",  # too few digits for E.164
        "123-456-7890",  # NANP area codes never start with 1
    ],
)
def test_not_phones(text: str) -> None:
    assert found(text, ["phone"]) == []


# --- email ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email", ["jane.doe@example.com", "first+tag@sub.example.co.uk", "A_B@EXAMPLE.ORG"]
)
def test_emails(email: str) -> None:
    only("email", email, f"write to <{email}>")


@pytest.mark.parametrize(
    "text",
    [
        "@dataclass",
        "lodash@4.17.21",
        "user@localhost",
        "a..b@example.com",
        "https://user:pw@example.com/x",  # URL credentials are not an email address
    ],
)
def test_not_emails(text: str) -> None:
    assert found(text, ["email"]) == []


def test_mailto_is_an_email() -> None:
    assert found("mailto:press@example.com", ["email"]) == [("email", "press@example.com")]


# --- IP addresses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ip",
    ["192.0.2.44", "10.0.0.12", "8.8.8.8", "2001:db8::8a2e:370:7334", "fe80::1ff:fe23:4567:890a"],
)
def test_ips(ip: str) -> None:
    only("ip_address", ip, f"login from {ip} blocked")


@pytest.mark.parametrize(
    "text",
    [
        "256.1.1.1",  # octet out of range
        "01.02.03.04",  # leading zeros are rejected by ipaddress
        "127.0.0.1 and ::1",  # loopback identifies no one
        "0.0.0.0",  # noqa: S104 - an address in a text, not a bind
        "version 1.2.3.4",
        "v1.2.3.4",
        "1.2.3.4.5",
        "10:30:45",
        "00:1A:2B:3C:4D:5E",  # MAC
        "dead::beef",  # a valid address, but no digit: words, not an address
    ],
)
def test_not_ips(text: str) -> None:
    assert found(text, ["ip_address"]) == []


# --- secrets -------------------------------------------------------------------------------

RANDOM_36 = "Zq8Lm3Rt6Vx1Nb4Kp7Wc2Hd5Jf9Gs0Ya3Ue"  # mixed classes, high entropy


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-" + RANDOM_36,
        "sk-ant-api03-" + RANDOM_36,
        "ghp_" + RANDOM_36,
        "github_pat_" + RANDOM_36,
        "xoxb-1234567890-" + RANDOM_36,
        "AKIAIOSFODNN7EXAMPLE",
        "AIza" + RANDOM_36[:35],
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlX2hlcmU",
        RANDOM_36,
    ],
)
def test_secrets(secret: str) -> None:
    only("secret", secret, f"here: {secret} ok")


def test_private_key_block_is_found_whole() -> None:
    key = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA"
        + RANDOM_36
        + "\n-----END RSA PRIVATE KEY-----"
    )
    only("secret", key, f"my key:\n{key}\nthanks")


def test_jwt_needs_a_json_header() -> None:
    fake = "eyJhYWFhYWFh.eyJhYWFhYWFh.aaaaaaaaaa"  # '{"aaaaaaa' is not JSON
    assert found(fake, ["secret"]) == []


HEX_40 = "9fceb02d0ae598e95dc970b74767f19372d61af8"
UUID = "123e4567-e89b-12d3-a456-426614174000"


@pytest.mark.parametrize("value", [HEX_40, UUID])
def test_hashes_and_uuids_are_secrets_only_after_a_secret_name(value: str) -> None:
    assert found(f"commit {value} failed", ["secret"]) == []
    assert found(f"api_key={value}", ["secret"]) == [("secret", value)]
    assert found(f'"client_secret": "{value}"', ["secret"]) == [("secret", value)]


@pytest.mark.parametrize(
    "text",
    [
        "OPENAI_API_KEY=YOUR_API_KEY_HERE",
        "api_key: xxxxxxxxxxxxxxxx",
        "max_tokens=4096",
        "class AbstractSingletonProxyFactoryBean:",
        "text-embedding-3-large-2024-01-25",
        'integrity="sha512-v2kDEe57lecTulaDIuNTPy3Ry4gLGJ6Z1O3vE1krgXZNrsQ+LFTGHVxVjcXPs17L"',
        "src=data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ",
    ],
)
def test_not_secrets(text: str) -> None:
    assert found(text, ["secret"]) == []


# --- find_pii ------------------------------------------------------------------------------


def test_findings_are_in_order_with_exact_offsets() -> None:
    text = "Jane jane@example.com, +44 20 7946 0958, card 4111 1111 1111 1111, ssn 078-05-1120"
    findings = find_pii(text, ALL)
    assert [f.entity for f in findings] == ["email", "phone", "credit_card", "us_ssn"]
    assert [f.start for f in findings] == sorted(f.start for f in findings)
    assert text[findings[0].start : findings[0].end] == "jane@example.com"


def test_overlapping_candidates_keep_the_longer_one() -> None:
    # The card's groups could also be read as a phone number; only the card is reported.
    findings = find_pii("4111 1111 1111 1111", ALL)
    assert findings == [PiiFinding("credit_card", 0, 19)]


def test_findings_never_overlap() -> None:
    text = "token=ghp_" + RANDOM_36 + " at 10.0.0.1 by a@example.com " * 3
    findings = find_pii(text, ALL)
    for a, b in itertools.pairwise(findings):
        assert a.end <= b.start


def test_only_requested_entities_are_looked_for() -> None:
    text = "jane@example.com 4111 1111 1111 1111"
    assert [f.entity for f in find_pii(text, ["credit_card"])] == ["credit_card"]
    assert find_pii(text, []) == []
