from __future__ import annotations

from datetime import date

import pytest

from devices.csv_import import CsvFormatError, ElderKey, decode_csv, parse_rows
from devices.elders import ContactRelation, ElderCategory

HEADER = (
    "device_id,model,elder_id,elder_name,elder_phone,address,community,categories,"
    "contact_name,contact_phone,contact_relation,zigbee_name\n"
)


def test_a_full_row_with_chinese_text() -> None:
    text = HEADER + (
        "p-001,sos-pendant,E17,张秀英,13800138000,花园街3号,张家口市/张北县/花园街道/幸福社区,"
        "独居;高龄,李明,139-0013-9000,子女,\n"
    )
    rows, errors = parse_rows(text)
    assert errors == []
    (row,) = rows
    assert row.elder == ElderKey(external_id="E17", name=None, phone="13800138000")
    assert row.elder_name == "张秀英"
    assert row.community == "张家口市/张北县/花园街道/幸福社区"
    assert row.categories == (ElderCategory.LIVING_ALONE, ElderCategory.ADVANCED_AGE)
    assert (row.contact_name, row.contact_phone) == ("李明", "13900139000")
    assert row.contact_relation is ContactRelation.FAMILY


def test_bad_rows_are_reported_by_line_and_the_rest_kept() -> None:
    text = HEADER + (
        "ok-1,sos-pendant,,,,,,,,,,\n"
        "bad id,sos-pendant,,,,,,,,,,\n"
        "ok-2,door-contact,,王芳,,,,空巢,,,,\n"
        "ok-3,,,,,,,,,,,\n"
        "ok-4,pir-motion,,赵强,,,a//b,,,,,\n"
        "ok-5,pir-motion,,赵强,,,,神仙,,,,\n"  # an unknown category: left out, kept
        "ok-1,pir-motion,,,,,,,,,,\n"
        "\n"
        "ok-6,pir-motion,,,,,,,,,,zb-kitchen\n"
        "ok-7,pir-motion,,,,,,,,,,zb-kitchen\n"
        "ok-8,pir-motion,,孙丽,12,,,,,,,\n"
    )
    rows, errors = parse_rows(text)
    assert [r.device_id for r in rows] == ["ok-1", "ok-2", "ok-5", "ok-6"]
    assert rows[2].categories == ()
    assert rows[2].warnings[0].startswith("category '神仙' left out")
    assert [(e.line, e.message.split(" ")[0]) for e in errors] == [
        (3, "device_id"),
        (5, "unknown"),
        (6, "community"),
        (8, "device"),
        (11, "zigbee_name"),
        (12, "elder_phone"),
    ]


def test_unknown_models_are_refused_when_the_catalogue_is_given() -> None:
    rows, errors = parse_rows("device_id,model\nd1,teleporter\nd2,sos-pendant\n", {"sos-pendant"})
    assert [r.device_id for r in rows] == ["d2"]
    assert errors[0].message == "unknown model 'teleporter'"


def test_extra_columns_room_and_install_date() -> None:
    rows, errors = parse_rows("device_id,model,room,install_date\nd1,pull-cord,卫生间,2026-03-01\n")
    assert errors == []
    assert (rows[0].room, rows[0].install_date) == ("卫生间", date(2026, 3, 1))


def test_the_file_itself_can_be_wrong() -> None:
    with pytest.raises(CsvFormatError, match="missing column"):
        parse_rows("device,model\nd1,x\n")
    with pytest.raises(CsvFormatError, match="unknown column"):
        parse_rows("device_id,model,shoe_size\nd1,x,42\n")


def test_utf8_with_bom_and_gb18030_are_read() -> None:
    text = "device_id,model,elder_name\nd1,sos-pendant,张秀英\n"
    assert decode_csv(b"\xef\xbb\xbf" + text.encode()) == (text, "utf-8")
    assert decode_csv(text.encode("gb18030")) == (text, "gb18030")


RELATIONS = [
    ("儿子", ContactRelation.FAMILY, "儿子"),
    ("女儿", ContactRelation.FAMILY, "女儿"),
    ("儿媳", ContactRelation.FAMILY, "儿媳"),
    ("女婿", ContactRelation.FAMILY, "女婿"),
    ("老伴", ContactRelation.FAMILY, "老伴"),
    ("配偶", ContactRelation.FAMILY, "配偶"),
    ("孙子", ContactRelation.FAMILY, "孙子"),
    ("侄子", ContactRelation.FAMILY, "侄子"),
    ("子女", ContactRelation.FAMILY, "子女"),
    ("邻居", ContactRelation.NEIGHBOUR, "邻居"),
    ("朋友", ContactRelation.OTHER, "朋友"),
    ("网格员", ContactRelation.COMMUNITY_WORKER, "网格员"),
    ("社区工作者", ContactRelation.COMMUNITY_WORKER, "社区工作者"),
    ("son", ContactRelation.FAMILY, "son"),
    ("Daughter", ContactRelation.FAMILY, "Daughter"),
    ("daughter-in-law", ContactRelation.FAMILY, "daughter-in-law"),
    ("spouse", ContactRelation.FAMILY, "spouse"),
    ("neighbour", ContactRelation.NEIGHBOUR, None),
    ("Neighbor", ContactRelation.NEIGHBOUR, "Neighbor"),
    ("social worker", ContactRelation.COMMUNITY_WORKER, "social worker"),
    ("family", ContactRelation.FAMILY, None),
    ("儿子（长子）", ContactRelation.FAMILY, "儿子（长子）"),
]


@pytest.mark.parametrize(("word", "relation", "label"), RELATIONS)
def test_relations_as_people_write_them(
    word: str, relation: ContactRelation, label: str | None
) -> None:
    rows, errors = parse_rows(HEADER + f"p1,sos-pendant,E1,张秀英,,,,,李明,13900139000,{word},\n")
    assert errors == []
    (row,) = rows
    assert (row.contact_relation, row.contact_label, row.warnings) == (relation, label, ())


def test_an_unknown_relation_is_other_kept_as_written_and_the_row_imported() -> None:
    rows, errors = parse_rows(HEADER + "p1,sos-pendant,E1,张秀英,,,,,李明,13900139000,表舅,\n")
    assert errors == []
    (row,) = rows
    assert (row.contact_relation, row.contact_label) == (ContactRelation.OTHER, "表舅")
    assert row.elder is not None
    assert row.contact_phone == "13900139000"
    (warning,) = row.warnings
    assert "'表舅'" in warning
    assert "stored as other" in warning


def test_cosmetic_fields_never_refuse_a_row_and_each_loss_is_said() -> None:
    header = HEADER.strip() + ",install_date\n"
    text = header + (
        # A contact without a phone, a bad elder phone with an id, a date as typed in Excel.
        "p1,sos-pendant,E1,张秀英,12,,,独居、高龄,李明,,儿子,,2026/3/1\n"
        # A bad contact phone and an unreadable date: the contact and the date left out.
        "p2,sos-pendant,E2,王芳,,,,,赵强,call-me,邻居,,三月一日\n"
        # Elder details without an elder: the device alone.
        "p3,pir-motion,,,,花园街3号,,,,,,,\n"
    )
    rows, errors = parse_rows(text)
    assert errors == []
    p1, p2, p3 = rows
    assert p1.install_date == date(2026, 3, 1)
    assert p1.categories == (ElderCategory.LIVING_ALONE, ElderCategory.ADVANCED_AGE)
    assert p1.elder == ElderKey(external_id="E1", name=None, phone=None)
    assert (p1.contact_name, p1.contact_phone, p1.contact_relation) == (None, None, None)
    assert [w.split(" ")[0] for w in p1.warnings] == ["elder_phone", "contact"]
    assert (p2.contact_phone, p2.install_date) == (None, None)
    assert p2.warnings == (
        "contact '赵强' not added: contact_phone 'call-me' is not a phone number",
        "install_date '三月一日' left out: not a date (write 2026-03-01)",
    )
    assert p3.elder is None
    assert p3.address is None
    assert p3.warnings[0].startswith("address not stored: the row names no elder")
