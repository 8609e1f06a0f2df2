"""The marketer's toolkit as a marketer runs it: `omnireach simulate`, `preview` and `lint`."""

from __future__ import annotations

import json
import re

from tests.cli.test_commands import run

FINDING = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<rule>[a-z0-9-]+): (?P<message>.+)$")


def test_lint_finds_nothing_in_the_examples(tmp_path):
    result = run(["lint"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "no findings in 3 cadence file(s)" in result.stderr


def planted(tmp_path):
    (tmp_path / "cadences").mkdir()
    (tmp_path / "templates" / "promo").mkdir(parents=True)
    (tmp_path / "templates" / "promo" / "sms.j2").write_text(
        "Big sale today 🎉 at {{ sender.name }}\n", encoding="utf-8"
    )
    (tmp_path / "cadences" / "promo.yaml").write_text(
        "id: promo\nname: Promo\npurpose: marketing\nsteps:\n  - {id: blast, send: sms, message: promo}\n",
        encoding="utf-8",
    )
    return ["--templates", str(tmp_path / "templates"), str(tmp_path / "cadences")]


def test_lint_reports_planted_defects_as_path_line_col_rule_message(tmp_path):
    result = run(["lint", *planted(tmp_path)], tmp_path)
    assert result.returncode == 1  # the missing opt-out text is an error
    lines = result.stdout.splitlines()
    parsed = [FINDING.match(line) for line in lines]
    assert all(parsed), lines
    found = {
        (m["rule"], m["path"].rsplit("/", 2)[-2] + "/" + m["path"].rsplit("/", 1)[-1], m["line"], m["col"])
        for m in parsed
    }
    assert ("sms-ucs2", "promo/sms.j2", "1", "16") in found
    assert any(rule == "sms-opt-out" for rule, *_ in found)
    assert "1 error(s), 1 warning(s)" in result.stderr


def test_lint_exit_code_follows_severity_and_strict(tmp_path):
    arguments = planted(tmp_path)
    (tmp_path / "templates" / "promo" / "sms.j2").write_text(
        "Big sale today 🎉 Reply STOP to opt out\n", encoding="utf-8"
    )
    warnings_only = run(["lint", *arguments], tmp_path)
    assert warnings_only.returncode == 0 and "sms-ucs2" in warnings_only.stdout
    assert run(["lint", "--strict", *arguments], tmp_path).returncode == 1


def test_preview_renders_every_message_for_the_contact(tmp_path):
    contact = tmp_path / "dewi.yaml"
    contact.write_text(
        "name: Dewi Lestari\nemail: dewi@example.id\nphone: '+6281234567890'\ncountry: ID\n"
        "timezone: Asia/Jakarta\nlocale: en\nattributes: {plan: pro}\n",
        encoding="utf-8",
    )
    result = run(["preview", "webinar-nurture", "--contact", str(contact), "--html", str(tmp_path / "out")], tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "Dewi" in text and "Manajemen Pajak untuk Restoran" in text
    assert "GSM-7 · 1 segment(s)" in text and "opt-out: STOP" in text and "opt-out: BERHENTI" in text
    assert "this contact" in text  # the English rendering is marked as the one Dewi gets
    assert "approved template HX00fd63015b8a15c2a59dbd5043d4bc7f" in text  # WhatsApp outside 24h, en
    page = (tmp_path / "out" / "preview.html").read_text(encoding="utf-8")
    assert page.count("<iframe") >= 4  # invite email HTML: 2 locales x 2 variants
    assert "step invite · email · locale en · variant b" in page


def test_preview_refuses_a_contact_file_with_unknown_fields(tmp_path):
    contact = tmp_path / "bad.yaml"
    contact.write_text("name: Dewi\nfirst_nmae: Dewi\n", encoding="utf-8")
    result = run(["preview", "webinar-nurture", "--contact", str(contact)], tmp_path)
    assert result.returncode == 2
    assert f"{contact}:2:1: first_nmae: unknown field 'first_nmae'" in result.stderr


def test_simulate_writes_table_json_charts_and_page(tmp_path):
    out = tmp_path / "sim"
    result = run(
        [
            "simulate", "webinar-nurture", "--contacts", "400", "--days", "10", "--seed", "5",
            "--timezones", "Asia/Jakarta:3,America/New_York:1", "--start", "2026-11-07T10:00+07:00", "--out", str(out),
        ],
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "webinar-nurture: 400 contacts over 10 days" in result.stdout
    data = json.loads((out / "simulation.json").read_text(encoding="utf-8"))
    assert data["dates"][:3] == ["2026-11-07", "2026-11-08", "2026-11-09"]
    # the window is mon-fri 09:00-17:00: the Saturday launch sends its invites on Monday (Jakarta)
    assert data["sends"]["email"][0] == data["sends"]["email"][1] == 0
    assert sum(data["sends"]["email"]) == 400
    assert data["totals"]["cost"]["total"] > 0 and set(data["agents_needed"]) <= {"telemarketing", "telesales"}
    for chart in ("sends.png", "leads.png", "calls.png"):
        assert (out / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "simulation.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 3 and "Simulation of webinar-nurture" in page


def test_simulate_reports_engagement_model_errors_with_positions(tmp_path):
    model = tmp_path / "model.yaml"
    model.write_text("channels:\n  email:\n    open: {probability: 2}\n", encoding="utf-8")
    result = run(["simulate", "webinar-nurture", "--contacts", "10", "--model", str(model)], tmp_path)
    assert result.returncode == 1
    assert f"{model}:3:" in result.stdout and "less than or equal to 1" in result.stdout


def test_simulate_refuses_an_unknown_cadence_and_timezone(tmp_path):
    unknown = run(["simulate", "no-such-cadence", "--contacts", "10"], tmp_path)
    assert unknown.returncode == 1 and "known: demo-welcome, flash-sale, webinar-nurture" in unknown.stderr
    zone = run(["simulate", "webinar-nurture", "--contacts", "10", "--timezones", "Mars/Base"], tmp_path)
    assert zone.returncode == 2 and "unknown timezone 'Mars/Base'" in zone.stderr


def test_preview_shows_the_encoding_an_emoji_forces_and_keeps_brackets(tmp_path):
    arguments = planted(tmp_path)
    (tmp_path / "templates" / "promo" / "sms.j2").write_text(
        "[Sale] today 🎉 Reply STOP to opt out\n", encoding="utf-8"
    )
    contact = tmp_path / "c.json"
    contact.write_text('{"name": "Budi", "locale": "en", "timezone": "Asia/Jakarta"}', encoding="utf-8")
    cadence_file = str(tmp_path / "cadences" / "promo.yaml")
    result = run(["preview", cadence_file, "--contact", str(contact), "--templates", arguments[1]], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[Sale] today 🎉" in result.stdout
    assert "UCS-2 · 1 segment(s) · 37/70 units · 36 characters" in result.stdout  # the emoji takes 2 units
