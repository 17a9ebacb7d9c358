import json

from lm2llm.tour.framework import load_result


def test_chapter_4_1_measures_the_funnel_pii_and_split(cli, tmp_path):
    result = cli("tour", "--quick", "--only", "4.1", "--out", tmp_path, "--json")
    assert result.code == 0, result.err
    chapter = load_result(tmp_path / "ch04_01" / "result.json", quick=True)
    assert chapter is not None and (tmp_path / "ch04_01" / "funnel.png").is_file()
    funnel = chapter.metrics["python_docs"]["funnel"]
    assert funnel["balanced"] and funnel["documents_in"] == 3000
    assert chapter.metrics["korean_law"]["pii"]["PHONE"] >= 1 and chapter.metrics["split_overlap"] == 0
    # the real-text precision claim fails: version numbers and netmasks are scrubbed as IPv4 addresses
    assert [c.holds for c in chapter.claims] == [True, True, True, False, True]
    assert chapter.metrics["pii_real_text"]["IPV4"]["fp"] >= 3
    assert all(c.statement.ko and c.measurement.ko for c in chapter.claims)
    assert "깔때기" in json.dumps([t.title.ko for t in chapter.tables], ensure_ascii=False)
