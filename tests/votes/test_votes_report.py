"""The report's votes sections: present with a votes table, absent without one."""

from __future__ import annotations

import json
from pathlib import Path

from imgnet_tools.manifest.schemas import validate_json
from imgnet_tools.report.build import ReportParams, report
from imgnet_tools.votes.adaptive import NextParams, next_votes
from imgnet_tools.votes.importer import ImportParams, import_votes
from tests.votes_data import make_votes_data


def test_report_shows_votes_per_synset_p_yes_and_workers(tmp_path: Path) -> None:
    data = make_votes_data(tmp_path, per_class=4)
    out = report(ReportParams(dir=tmp_path, out=tmp_path / "report-before"))
    assert "votes" not in {s["id"] for s in out.sections}
    first = next_votes(NextParams(str(data.manifest), str(data.votes), str(tmp_path / "batches"), method="majority"))
    page = json.loads((Path(first.batch.out) / "page_tasks.json").read_text())  # type: ignore[union-attr]
    rows = ["key,wnid,worker,answer"] + [f"{q['key']},{t['wnid']},{w},{'no' if w == 'spam-z' else 'yes'}"
                                         for t in page["tasks"] for q in t["questions"] for w in ("ann", "bob", "spam-z")]
    (tmp_path / "answers.csv").write_text("\n".join(rows) + "\n")
    import_votes(ImportParams((str(tmp_path / "answers.csv"),), str(data.votes)))
    next_votes(NextParams(str(data.manifest), str(data.votes), str(tmp_path / "batches"), method="majority"))
    result = report(ReportParams(dir=tmp_path, out=tmp_path / "report"))
    sections = {s["id"]: s for s in result.sections}
    assert sections["votes"]["available"] and sections["votes-consensus"]["available"]
    doc = json.loads((tmp_path / "report" / "report.json").read_text())
    validate_json(doc, "report")
    assert {s["kind"] for s in doc["sources"]} >= {"manifest", "votes", "votes_consensus", "votes_workers"}
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Crowd votes per synset" not in html  # the title is drawn in the figure, the table is HTML
    assert "<td>n01440764</td><td class=\"n\">8</td>" in html  # 4 images x 2 yes votes
    assert "<td>spam-z</td>" in html and html.count('src="data:image/png;base64,') == len(result.sections)
    assert (tmp_path / "report" / "fig_votes_consensus.png").is_file()
