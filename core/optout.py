"""What an inbound SMS or WhatsApp text asks for: stop, start again, help, or none of these (a reply).

Keywords (COMPLIANCE.md): a message that is one keyword, in any case, with surrounding whitespace and
punctuation ignored. Since 2025 US rules also count any reasonable free-text request to stop, so common
English and Indonesian phrasings are detected too ("please stop texting me", "jangan hubungi saya lagi").
"YES" re-grants only when the sender is opted out on that channel; otherwise it is an ordinary reply
("Yes, I'll come"), which the caller decides with ``opted_out``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout", "berhenti"})
START_WORDS = frozenset({"start", "unstop", "yes"})
HELP_WORDS = frozenset({"help", "info"})
# Words Twilio's own default opt-out handling answers on SMS (so we need not confirm them twice).
TWILIO_HANDLED = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout", "start", "unstop", "yes", "help",
     "info"}
)  # fmt: skip

_ME = r"(?:me|us|my number|this number)"
_SEND = (
    r"(?:text(?:ing)?|messag(?:e|ing)|sms(?:ing)?|send(?:ing)?|contact(?:ing)?|call(?:ing)?|email(?:ing)?"
    r"|spam(?:ming)?)"
)
_THINGS = r"(?:texts?|messages?|sms|calls?|emails?)"
# Each pattern is matched against the normalised text (lower case, single spaces, punctuation removed).
_FREE_TEXT_STOP = [
    # English
    rf"\bstop {_SEND}(?: {_ME})?\b",
    r"\bplease stop$",  # not "please stop by our booth"
    r"\bstop (?:it|this|now|please|all|already)\b",
    rf"\b(?:don'?t|do not|dont|never) {_SEND} {_ME}\b",
    rf"\b(?:don'?t|do not|dont) want (?:any more|anymore|more|your|these|this) {_THINGS}\b",
    rf"\bno more {_THINGS}\b",
    rf"\bunsubscribe(?: {_ME})?\b",
    r"\bopt (?:me )?out\b",
    rf"\b(?:remove|delete|take) {_ME} (?:off|from)\b",
    r"\bleave me alone\b",
    r"\b(?:lose|delete|remove) my (?:number|details|data)\b",
    r"\bwrong number\b",
    # Indonesian
    r"\b(?:tolong|mohon|harap|please) berhenti\b",
    r"\bberhenti (?:kirim|mengirim|menghubungi|hubungi|sms|chat|wa|pesan|telepon|telpon)\b",
    r"\bjangan (?:lagi )?(?:hubungi|kirim(?:i)?|sms|telepon|telpon|telfon|chat|wa|whatsapp|ganggu|spam)\b",
    r"\b(?:stop|setop|stp) (?:kirim|sms|chat|wa|pesan|hubungi|telepon|telpon)\b",
    r"\b(?:tidak|nggak|ngga|gak|ga|tak) (?:mau|ingin) (?:lagi )?(?:dihubungi|menerima|terima|dapat|dikirimi?)\b",
    r"\b(?:hapus|keluarkan) (?:nomor|no|data) (?:saya|aku|hp)\b",
    r"\bkeluarkan (?:saya|aku) dari\b",
    r"\bsalah (?:nomor|sambung)\b",
]
# A request to keep going is not a request to stop ("don't stop sending me deals", "jangan berhenti").
_NEGATED = [
    r"\b(?:don'?t|do not|dont|never|not) stop\b",
    r"\bjangan berhenti\b",
    r"\bnot? unsubscribe\b",
]
_STOP_RE = re.compile("|".join(f"(?:{p})" for p in _FREE_TEXT_STOP))
_NEGATED_RE = re.compile("|".join(f"(?:{p})" for p in _NEGATED))
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Intent:
    """``kind``: stop | start | help | other; ``keyword``: the single keyword, when it was one."""

    kind: str
    keyword: str | None = None
    free_text: bool = False

    @property
    def standard_keyword(self) -> bool:
        """A keyword Twilio's default opt-out handling also answers on SMS."""
        return self.keyword is not None and self.keyword in TWILIO_HANDLED


def _strip_edges(text: str) -> str:
    """Drop everything that is not a letter or digit from both ends (punctuation, quotes, emoji)."""
    start, end = 0, len(text)
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return text[start:end]


def normalise(text: str) -> str:
    """Lower case, compatibility forms (full-width letters), curly apostrophes straight, punctuation dropped
    (apostrophes kept inside words), single spaces."""
    text = unicodedata.normalize("NFKC", text or "").replace("\u2019", "'").replace("\u2018", "'").casefold()
    kept = "".join(ch if ch.isalnum() or ch == "'" else " " for ch in text)
    return _SPACES.sub(" ", kept).strip(" '")


def classify(text: str, *, opted_out: bool = False) -> Intent:
    """What the sender asks for. ``opted_out``: whether they are currently opted out on this channel (only
    then does a bare YES mean "start again")."""
    word = _strip_edges(unicodedata.normalize("NFKC", text or "").strip()).casefold()
    if word and " " not in word and "\n" not in word and "\t" not in word:
        if word in STOP_WORDS:
            return Intent("stop", word)
        if word in START_WORDS and (word != "yes" or opted_out):
            return Intent("start", word)
        if word in HELP_WORDS:
            return Intent("help", word)
    flat = normalise(text)
    if flat and _STOP_RE.search(flat) and not _NEGATED_RE.search(flat):
        return Intent("stop", None, free_text=True)
    return Intent("other")


def _indonesian(locale: str | None, intent: Intent) -> bool:
    return intent.keyword == "berhenti" or (locale or "").lower().startswith("id")


def reply_text(intent: Intent, *, sender_name: str, help_text: str | None = None, locale: str | None = None) -> str:
    """The one confirmation for a keyword (COMPLIANCE.md): who we are, how often, rates, how to stop or resume."""
    indonesian = _indonesian(locale, intent)
    if intent.kind == "stop":
        if indonesian:
            return (
                f"{sender_name}: Anda telah berhenti berlangganan dan tidak akan menerima pesan lagi di nomor ini. "
                "Balas START untuk berlangganan kembali."
            )
        return (
            f"{sender_name}: You are unsubscribed and will get no more messages on this number. "
            "Reply START to resubscribe."
        )
    if intent.kind == "start":
        if indonesian:
            return (
                f"{sender_name}: Anda berlangganan kembali. Frekuensi pesan bervariasi. Tarif pesan & data berlaku. "
                "Balas HELP untuk bantuan, STOP untuk berhenti."
            )
        return (
            f"{sender_name}: You are subscribed again. Msg frequency varies. Msg & data rates may apply. "
            "Reply HELP for help, STOP to unsubscribe."
        )
    if intent.kind == "help":
        if help_text:
            return help_text
        if indonesian:
            return (
                f"{sender_name}: info dan penawaran. Frekuensi pesan bervariasi. Tarif pesan & data berlaku. "
                "Balas STOP atau BERHENTI untuk berhenti."
            )
        return (
            f"{sender_name}: updates and offers. Msg frequency varies. Msg & data rates may apply. "
            "Reply STOP to unsubscribe."
        )
    raise ValueError(f"no confirmation for a {intent.kind!r} message")
