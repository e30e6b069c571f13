"""`leo test`: unit tests for pipelines, written beside pipelines.yaml as ``*.leo-test.yaml``.

- `spec`: a test file read and checked against the pipelines it tests (every problem located,
  with a did-you-mean), into `Case`s ready to run;
- `bench`: a temporary store where bots run as `leo run` runs them (`BotWork`: the same commits,
  state and dead letters), with a clock that stands still unless a test moves it on;
- `expect`: what a test expects of a queue, a recorder or a batch, and how a miss is told;
- `session`: finding test files, running them, and what `leo test` prints (text, JSON, JUnit);
- `update`: ``leo test --update``, writing actual outputs into expectations marked ``record``.
"""

from __future__ import annotations

TEST_FILE_SUFFIX = ".leo-test.yaml"
"""Test files end with this."""
