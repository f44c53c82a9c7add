"""A sealed LogGroup batch is posted as the one buffer it was sealed in (no copy); the logs are
cut apart only for a split or a restamp. The whole buffer must be the very group the general
path rebuilds from the logs, and its logs' boundaries readable from the framing alone."""

from __future__ import annotations

from typing import Any

from aliyun.log.log_logs_raw_pb2 import LogGroupRaw  # type: ignore[attr-defined]
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtail.agent.delivery.sls_group import Pending
from llmtail.agent.engine.loggroup import split_logs
from llmtail.parsers.record import Record
from tests.batches import sealed

values = st.one_of(st.none(), st.text(max_size=200), st.integers(-(2**40), 2**40))
records = st.builds(
    Record,
    fields=st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), values, max_size=6),
    time=st.integers(0, 2**32 - 1),
    time_ns=st.integers(0, 999_999_999),
)
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)  # no lone surrogates
tags = st.lists(st.tuples(text, text), max_size=3)


def decoded(p: Pending) -> Any:
    raw = LogGroupRaw()
    raw.ParseFromString(p.group().SerializeToString())
    return raw


@settings(max_examples=60, deadline=None)
@given(st.lists(records, min_size=1, max_size=6), text, tags)
def test_a_batch_sent_whole_is_the_group_its_logs_rebuild(
    rs: list[Record], topic: str, extra: list[tuple[str, str]]
) -> None:
    b = sealed(rs, wire="loggroup", topic=topic, tags=tuple(extra))
    whole = Pending(b.data, None, b.record_times(), b.trailer)
    assert whole.group().SerializeToString() is b.data  # posted as it is: no copy
    assert whole.framed_ends() == b.ends()
    rebuilt = Pending.of(split_logs(b.data, b.ends()), b.record_times(), b.trailer, set())
    assert rebuilt.data == b.data
    group = decoded(whole)
    assert len(group.Logs) == len(rs) and group.Topic == topic
    # __hostname__, __path__ and __pack_id__ come first
    assert [(t.Key, t.Value) for t in group.LogTags][3:] == extra
    if len(rs) > 1:
        first, second = rebuilt.halves()
        assert first.framed_ends() == first.ends and second.framed_ends() == second.ends
        halves = [decoded(first), decoded(second)]
        assert [len(h.Logs) for h in halves] == [len(rs) // 2, len(rs) - len(rs) // 2]
        assert [log for h in halves for log in h.Logs] == list(group.Logs)
        assert all(h.Topic == topic and h.LogTags == group.LogTags for h in halves)
