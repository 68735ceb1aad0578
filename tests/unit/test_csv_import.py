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
        "ok-5,pir-motion,,赵强,,,,神仙,,,,\n"
        "ok-1,pir-motion,,,,,,,,,,\n"
        "\n"
        "ok-6,pir-motion,,,,,,,,,,zb-kitchen\n"
        "ok-7,pir-motion,,,,,,,,,,zb-kitchen\n"
        "ok-8,pir-motion,,孙丽,12,,,,,,,\n"
    )
    rows, errors = parse_rows(text)
    assert [r.device_id for r in rows] == ["ok-1", "ok-2", "ok-6"]
    assert [(e.line, e.message.split(" ")[0]) for e in errors] == [
        (3, "device_id"),
        (5, "unknown"),
        (6, "community"),
        (7, "unknown"),
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
