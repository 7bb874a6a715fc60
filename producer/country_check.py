"""Whether the country files hold a backfill's summaries: one listing, then a read of each file that changed.

The wait checks the aggregator's work rather than rebuilding the files itself (the app's old step
rebuilt them): the aggregator is their one writer, rebuilds a country from its cache of summaries
within seconds of the events, and a wait that rebuilt would download every summary of the country
again and need write access to ``model_summary/``. A broken aggregator then fails the deploy
(the timeout names the files that lag) instead of being papered over.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from mmm_backfill.errors import ObjectTooLarge
from mmm_backfill.runpath import COUNTRY_ROOT, COUNTRY_SUMMARY_NAME, RunPath
from mmm_backfill.storage import ObjectInfo, Storage
from producer.tracker import SUMMARISED, RunState, missing_from, runs_held
from producer.wait_report import CountryFileCheck

#: Run paths named per country file that lags.
MISSING_EXAMPLES = 5
#: Largest country file read back (a country of 100,000 runs is about 60 MB); a larger one counts as lagging.
MAX_COUNTRY_FILE_BYTES = 128 * 1024 * 1024


class CountryFiles:
    """Checks country files against the runs they must hold, reading a file again only when its generation moved.

    ``already_current``: runs whose summary was current (written by this version) when the backfill
    listed them; their country files must hold them too, so a wait run again after a timeout also
    vouches for what the first one's requests summarised meanwhile.
    """

    def __init__(self, storage: Storage, already_current: Iterable[RunPath] = ()) -> None:
        self.storage = storage
        self.already_current = list(already_current)
        self._held: dict[str, tuple[int, dict[str, object]]] = {}  # country -> (generation, run path -> created_at)

    def check(self, summarised: dict[str, list[RunState]]) -> list[CountryFileCheck]:
        """One check per country of ``summarised`` (country → runs this backfill summarised) or of the
        runs already current, in country order."""
        expected = {country: list(runs) for country, runs in summarised.items()}
        ours = {state.run.prefix for runs in summarised.values() for state in runs}
        for run in self.already_current:
            if run.prefix not in ours:
                expected.setdefault(run.country, []).append(RunState(run, SUMMARISED, "already_current"))
        if not expected:
            return []
        files = self._listing()
        return [self._check(country, expected[country], files.get(country)) for country in sorted(expected)]

    def _listing(self) -> dict[str, ObjectInfo]:
        found = {}
        for obj in self.storage.list(f"{COUNTRY_ROOT}/"):
            parts = obj.name.split("/")
            if len(parts) == 3 and parts[2] == COUNTRY_SUMMARY_NAME:
                found[parts[1]] = obj
        return found

    def _check(self, country: str, runs: list[RunState], obj: ObjectInfo | None) -> CountryFileCheck:
        held = {} if obj is None else self._runs_held(country, obj)
        missing = missing_from(held, runs)
        generation = None if obj is None else obj.generation
        return CountryFileCheck(country, len(runs), generation, len(missing), missing[:MISSING_EXAMPLES])

    def _runs_held(self, country: str, obj: ObjectInfo) -> dict[str, object]:
        cached = self._held.get(country)
        if cached is not None and cached[0] == obj.generation:
            return cached[1]
        try:
            found = self.storage.read_object(obj, MAX_COUNTRY_FILE_BYTES)
        except ObjectTooLarge:
            found = None
        held = {} if found is None else runs_held(_parse(found))
        self._held[country] = (obj.generation, held)
        return held


def _parse(data: bytes) -> object:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
