"""Secrets stay hidden in outputs at any depth, in free text and in log lines."""

from __future__ import annotations

import io
import logging

from pulumi import automation as auto

from infra import logs
from infra.masking import mask_outputs, mask_text, secret_texts

SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
       "ciphertext": "v1:abc"}


def _deployment(outputs: dict) -> auto.Deployment:
    return auto.Deployment(version=3, deployment={"resources": [
        {"type": "pulumi:providers:random", "outputs": {}},
        {"type": "pulumi:pulumi:Stack", "outputs": outputs}]})


def test_a_secret_is_masked_where_it_sits_and_the_rest_is_shown():
    outputs = {"credentials": auto.OutputValue({"token": "t0k", "user": "ann"}, False),
               "listed": auto.OutputValue(["plain", "t0k"], False),
               "whole": auto.OutputValue("t0k", True),
               "plain": auto.OutputValue(7, False)}
    deployment = _deployment({"credentials": {"token": SIG, "user": "ann"},
                              "listed": ["plain", SIG], "whole": SIG, "plain": 7})
    assert mask_outputs(outputs, deployment) == {
        "credentials": {"token": "[secret]", "user": "ann"}, "listed": ["plain", "[secret]"],
        "whole": "[secret]", "plain": 7}


def test_an_output_the_deployment_does_not_vouch_for_is_masked_whole():
    outputs = {"missing": auto.OutputValue({"a": 1}, False),
               "reshaped": auto.OutputValue({"a": 1, "b": 2}, False),
               "shorter": auto.OutputValue([1, 2], False)}
    deployment = _deployment({"reshaped": {"a": 1}, "shorter": [1]})
    assert mask_outputs(outputs, deployment) == {
        "missing": "[secret]", "reshaped": "[secret]", "shorter": "[secret]"}


def test_every_form_of_a_secret_config_value_is_a_text_to_mask():
    config = {"token": "t0k", "keys": ["k-one", "k-two"], "pin": 1234, "owner": "ann"}
    assert set(secret_texts(config, ["token", "keys", "pin", "absent"])) == {
        "t0k", '["k-one", "k-two"]', '[\\"k-one\\", \\"k-two\\"]', "k-one", "k-two", "1234"}


def test_a_multi_line_or_escaped_secret_is_masked_as_logged_and_as_quoted():
    pem = "-----BEGIN KEY-----\nMIIsecretline1\n}\n-----END KEY-----"
    texts = secret_texts({"pem": pem, "token": 'a\\b"c'}, ["pem", "token"])
    logged = "error: bad pem -----BEGIN KEY-----\n    MIIsecretline1\n    }"
    assert "MIIsecretline1" not in mask_text(logged, texts)
    assert mask_text("ValueError: 'a\\\\b\"c'", texts) == "ValueError: '[secret]'"
    assert mask_text(f"KeyError: {pem!r}", texts) == "KeyError: '[secret]'"
    # A short line is not masked on its own.
    assert "}" in mask_text("{x}", texts)


def test_a_secret_containing_another_is_masked_whole():
    assert mask_text("key abc-long and abc", ["abc", "abc-long"]) == "key [secret] and [secret]"


def test_log_lines_and_tracebacks_in_a_masking_block_hide_the_secrets():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("test-masking")
    logger.addHandler(handler)
    try:
        with logs.masking(("t0k",)):
            logger.error("program said %s", "bad t0k")
            try:
                raise ValueError("t0k in a traceback")
            except ValueError:
                logger.exception("failed")
        logger.error("outside: %s", "t0k")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue()
    assert "program said bad [secret]" in lines and "[secret] in a traceback" in lines
    # Only the block's lines are masked.
    assert lines.count("t0k") == 1 and "outside: t0k" in lines
