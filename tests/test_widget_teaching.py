"""What the notebooks teach with widgets: the composer measures a message against SQS's limits as it
is typed (1 MiB, 10 attributes); the POST inspector names the parts where sqsd and the article differ."""

from __future__ import annotations

from labapp.sqs import MAX_MESSAGE_BYTES
from labapp.sqsd import LAB_PROFILE
from labapp.widgets.composer import Composer
from labapp.widgets.inspector_view import compare_rows, differing, sample_message

ORDER = '{"type": "order", "order_id": "W-1", "amount": 5}'


class NoLab:
    """Stands for a stopped lab: the composer measures without one and sends nothing."""


def test_the_composer_shows_the_size_with_attributes_against_1_mib_and_the_attribute_count() -> None:
    composer = Composer(NoLab(), ORDER)
    composer.attributes.value = "tenant=acme"
    size = len(ORDER) + len("tenant") + len("String") + len("acme")
    assert f"{size} bytes of SQS's 1,048,576 (1 MiB, attributes included)" in composer.body_check.value
    assert "1 of 10 attributes" in composer.body_check.value
    assert not composer.send_button.disabled
    composer.close()


def test_an_eleventh_attribute_cannot_be_sent() -> None:
    composer = Composer(NoLab(), ORDER)
    composer.attributes.value = "\n".join(f"a{n}=v" for n in range(10))
    assert not composer.send_button.disabled and "10 of 10 attributes" in composer.body_check.value
    composer.attributes.value += "\na10=v"
    assert composer.send_button.disabled
    assert "11 attributes; SQS allows at most 10" in composer.body_check.value
    composer.close()


def test_a_message_one_byte_over_1_mib_cannot_be_sent_and_one_at_the_limit_can() -> None:
    at_limit = '"' + "x" * (MAX_MESSAGE_BYTES - 2) + '"'
    composer = Composer(NoLab(), at_limit)
    assert not composer.send_button.disabled
    composer.body.value = '"' + "x" * (MAX_MESSAGE_BYTES - 1) + '"'
    assert composer.send_button.disabled
    assert "1,048,577 bytes with its attributes; SQS allows at most 1,048,576" in composer.body_check.value
    composer.close()


def test_sqsd_and_the_article_differ_in_content_type_and_body_only() -> None:
    rows = compare_rows(sample_message(ORDER), "lab-02", LAB_PROFILE)
    assert differing(rows) == ["Content-Type", "body"]
    body = dict((name, (real, claim)) for name, real, claim in rows)["body"]
    assert "SQSMessageBody=" in body[1] and "SQSMessageBody" not in body[0]
