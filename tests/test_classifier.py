"""The process classifier end to end: catalog, training, classification, explanation,
evaluation. One real model is trained per test session on the packaged examples (seconds).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from classifiers import (
    GENERAL,
    ClassifierInput,
    ProcessClassifier,
    evaluate,
    format_explanation,
    format_report,
    load_catalog,
    load_examples,
    train_model,
)
from classifiers.examples import ExampleError, read_jsonl

RECEIVED = datetime(2026, 3, 11, 9, 30, tzinfo=UTC)


def triples(split: str) -> list[tuple[str, str, str]]:
    return [(e.subject, e.body, e.label) for e in load_examples(split)]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped training recipe, run once for the whole session."""
    path = tmp_path_factory.mktemp("model")
    train_model(triples("train"), path, seed=0)
    return path


@pytest.fixture(scope="session")
def classifier(model_dir: Path) -> ProcessClassifier:
    return ProcessClassifier.load(model_dir, threshold=0.5)


def ask(classifier: ProcessClassifier, subject: str, text: str) -> str:
    return classifier.classify(ClassifierInput(subject, text, RECEIVED)).process


def test_catalog_has_exactly_the_eight_processes_with_their_display_names() -> None:
    catalog = load_catalog()
    assert {name: process.display_name for name, process in catalog.items()} == {
        "extend_due_date": "Extend Invoice Due Date",
        "suspend_billing": "Suspend Billing",
        "resume_billing": "Resume Billing",
        "update_bill_to_contact": "Update Bill-To Contact",
        "update_payment_method": "Update Payment Method",
        "invoice_copy": "Request Invoice Copy",
        "charge_correction": "Invoice Charge Correction",
        "general": "Other Billing Inquiries/Disputes",
    }


def test_only_charge_correction_opens_a_dispute() -> None:
    disputes = [name for name, process in load_catalog().items() if process.opens_dispute]
    assert disputes == ["charge_correction"]


def test_every_process_has_examples_in_both_splits() -> None:
    for split in ("train", "heldout"):
        assert {e.label for e in load_examples(split)} == set(load_catalog())


def test_training_is_deterministic(tmp_path: Path, classifier: ProcessClassifier) -> None:
    train_model(triples("train"), tmp_path / "again", seed=0)
    again = ProcessClassifier.load(tmp_path / "again", threshold=0.5)
    items = [ClassifierInput(e.subject, e.body, RECEIVED) for e in load_examples("heldout")[:40]]
    first = [result.scores for result in classifier.classify_many(items)]
    second = [result.scores for result in again.classify_many(items)]
    assert first == second


def test_different_seed_still_learns_the_same_decisions(tmp_path: Path) -> None:
    report = train_model(triples("train"), tmp_path / "seed1", seed=1)
    assert report.seed == 1
    other = ProcessClassifier.load(tmp_path / "seed1", threshold=0.5)
    assert ask(other, "Card expired", "Please update the card on file, the old one expired.") == (
        "update_payment_method"
    )


def test_negated_request_is_not_taken_literally(classifier: ProcessClassifier) -> None:
    text = "Please do NOT suspend us, we just need two more weeks to pay invoice 20931."
    assert ask(classifier, "Overdue notice", text) == "extend_due_date"


def test_body_outweighs_a_misleading_subject(classifier: ProcessClassifier) -> None:
    text = (
        "Hi, our shop is closed for renovation from next month until June. "
        "Please suspend our billing while we are closed, we will tell you when we reopen."
    )
    assert ask(classifier, "Invoice question", text) == "suspend_billing"


@pytest.mark.parametrize(
    ("subject", "text", "expected"),
    [
        (
            "Abrechnung aussetzen",
            "Guten Tag, unser Restaurant ist im August wegen Betriebsferien geschlossen. "
            "Bitte setzen Sie die Abrechnung für diesen Monat aus.",
            "suspend_billing",
        ),
        (
            "Copia de factura",
            "Hola, ¿me pueden reenviar una copia de la factura de enero? No la encuentro.",
            "invoice_copy",
        ),
        (
            "Mode de paiement",
            "Bonjour, nous souhaitons passer du paiement par carte au prélèvement SEPA. "
            "Merci de mettre à jour notre mode de paiement.",
            "update_payment_method",
        ),
    ],
)
def test_german_spanish_and_french_requests(
    classifier: ProcessClassifier, subject: str, text: str, expected: str
) -> None:
    assert ask(classifier, subject, text) == expected


def test_gibberish_falls_back_to_general_but_keeps_the_scores(
    classifier: ProcessClassifier,
) -> None:
    result = classifier.classify(ClassifierInput("zxqv", "blorp fnord wibble quux", RECEIVED))
    assert result.process == GENERAL
    assert result.confidence < 0.5
    assert set(result.scores) == set(load_catalog())


def test_below_the_threshold_the_process_is_general_but_the_guess_stays_visible(
    model_dir: Path,
) -> None:
    strict = ProcessClassifier.load(model_dir, threshold=0.95)
    text = "Please send the invoice again and change the card we pay with."
    result = strict.classify(ClassifierInput("Invoice 5590", text, RECEIVED))
    assert result.process == GENERAL
    assert result.best_guess in {"invoice_copy", "update_payment_method"}
    assert result.confidence == result.scores[result.best_guess] < 0.95


def test_classification_carries_the_extracted_fields(classifier: ProcessClassifier) -> None:
    text = (
        "Hi, invoice INV-2026-0318 charged us $1,250.00 for 25 seats but we only have 18. "
        "We were overcharged $210.00. Please correct it."
    )
    result = classifier.classify(ClassifierInput("Wrong seat count", text, RECEIVED))
    assert result.process == "charge_correction"
    assert result.fields.invoice_number == "INV-2026-0318"
    assert (result.fields.amount, result.fields.currency) == (Decimal("210.00"), "USD")
    # The first of two complaint sentences, as long as neither has more complaint words.
    assert result.fields.reason == (
        "Hi, invoice INV-2026-0318 charged us $1,250.00 for 25 seats but we only have 18."
    )


def test_reason_is_left_out_where_the_process_does_not_want_it(
    classifier: ProcessClassifier,
) -> None:
    text = "We can't pay invoice 3307 on time, it is wrong of us, can we pay by April 10?"
    result = classifier.classify(ClassifierInput("Extension", text, RECEIVED))
    assert result.process == "extend_due_date"
    assert result.fields.reason is None
    assert result.fields.requested_date == date(2026, 4, 10)


def test_classify_many_agrees_with_classify(classifier: ProcessClassifier) -> None:
    items = [ClassifierInput(e.subject, e.body, RECEIVED) for e in load_examples("heldout")[:25]]
    assert classifier.classify_many(items) == [classifier.classify(item) for item in items]


def test_received_at_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        ClassifierInput("s", "t", datetime(2026, 3, 11))


def test_explanation_names_the_words_and_rules_behind_a_decision(
    classifier: ProcessClassifier,
) -> None:
    text = "Please do NOT suspend our account, we just need two more weeks to pay INV-2024-00991."
    explanation = classifier.explain(ClassifierInput("Overdue", text, RECEIVED))
    assert explanation.explained == "extend_due_date"
    assert any(word.word == "suspend" and word.negated for word in explanation.words)
    assert [(rule.field, rule.rule) for rule in explanation.rules][:1] == [
        ("invoice_number", "invoice_prefixed_id")
    ]
    assert "extend_due_date" in format_explanation(explanation)
    json.dumps(explanation.to_json())


def test_a_confident_decision_still_shows_which_words_made_it(
    classifier: ProcessClassifier,
) -> None:
    # Confidence rounds to 1.00 here; the pushes must still tell the words apart.
    text = ("Could you please move the due date of invoice INV-2026-00231 to the end of "
            "the month? We need more time to pay.")
    explanation = classifier.explain(ClassifierInput("Due date", text, RECEIVED))
    assert explanation.classification.process == "extend_due_date"
    assert explanation.classification.confidence > 0.99
    strongest = explanation.words[0]
    assert strongest.push > 0.5
    assert strongest.word.lower() in {"due", "date", "time", "pay", "move"}


def test_heldout_evaluation_of_the_shipped_recipe(classifier: ProcessClassifier) -> None:
    """The whole train/evaluate workflow; the bars are below today's figures so that only
    a real regression fails."""
    heldout = load_examples("heldout")
    predictions = classifier.classify_many(
        [ClassifierInput(e.subject, e.body, RECEIVED) for e in heldout]
    )
    report = evaluate(predictions, heldout)
    fields = {field.field: field for field in report.fields}
    assert report.macro_f1 >= 0.88
    assert fields["invoice_number"].accuracy >= 0.93
    assert fields["amount+currency"].accuracy >= 0.88
    table = format_report(report)
    assert all(name in table for name in load_catalog())


def test_evaluation_counts_precision_recall_and_false_positives(
    classifier: ProcessClassifier,
) -> None:
    examples = load_examples("heldout")[:3]
    predictions = classifier.classify_many(
        [ClassifierInput(e.subject, e.body, RECEIVED) for e in examples]
    )
    wrong = [p.__class__(GENERAL, p.confidence, p.scores, p.fields) for p in predictions]
    report = evaluate(wrong, examples)
    general = next(score for score in report.processes if score.process == GENERAL)
    assert general.precision == sum(e.label == GENERAL for e in examples) / 3
    assert report.accuracy == sum(e.label == GENERAL for e in examples) / 3
    with pytest.raises(ValueError):
        evaluate(predictions[:2], examples)


def test_a_bad_example_line_names_its_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"body": "x", "label": "general", "amount": "12,50"}\n', encoding="utf-8")
    with pytest.raises(ExampleError, match=r"bad\.jsonl:1"):
        read_jsonl(path)


def test_training_refuses_labels_outside_the_catalog(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not in the catalog"):
        train_model([("s", "t", "general"), ("s", "t", "refund_now")], tmp_path)


def test_a_long_running_classifier_sheds_the_words_it_learned(model_dir):
    """Memory stays flat: past a limit of new strings, the saved model is loaded again."""
    classifier = ProcessClassifier.load(model_dir, threshold=0.5)
    start = len(classifier.nlp.vocab.strings)
    received = datetime(2026, 3, 2, tzinfo=UTC)
    items = [ClassifierInput(f"Invoice Q{number}X", f"Please resend invoice ZZ{number}QQ.",
                             received) for number in range(300)]
    before = classifier.classify_many(items[:1])[0]
    classifier.classify_many(items)

    assert len(classifier.nlp.vocab.strings) > start + 300
    assert classifier.reload_if_grown(max_new_strings=100)
    assert len(classifier.nlp.vocab.strings) == start
    assert classifier.classify_many(items[:1])[0].process == before.process
    assert not classifier.reload_if_grown(max_new_strings=100)
