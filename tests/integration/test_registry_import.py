"""The spreadsheet import on a real database: create, update, never duplicate."""

from __future__ import annotations

import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from devices.csv_import import import_csv
from devices.elders import ContactRow, ElderRow
from devices.registry import DeviceRow

FILE = (
    "device_id,model,elder_id,elder_name,elder_phone,address,community,categories,"
    "contact_name,contact_phone,contact_relation,zigbee_name\n"
    "p-001,sos-pendant,E17,张秀英,13800138000,花园街3号,张家口市/张北县/花园街道/幸福社区,"
    "独居;高龄,李明,13900139000,子女,\n"
    "d-001,door-contact,E17,张秀英,13800138000,,,,王大妈,13700137000,邻居,zb-door-17\n"
    "p-002,sos-pendant,,王芳,13600136000,,张家口市/张北县,empty_nest,,,,\n"
    "p-003,sos-pendant,,王芳,13600136000,,,,,,,\n"
    "x-001,sos-pendant,,,,,,,,,,\n"
)


def count(session: Session, table: type) -> int:
    return session.scalar(select(func.count()).select_from(table)) or 0


def test_import_creates_elders_contacts_and_devices(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        report = import_csv(session, FILE.encode())
    assert report.errors == []
    assert (report.rows, report.elders_created, report.devices_created) == (5, 2, 5)
    assert report.contacts_added == 2
    with sessions() as session:
        zhang = session.scalars(select(ElderRow).where(ElderRow.external_id == "E17")).one()
        wang = session.scalars(select(ElderRow).where(ElderRow.name == "王芳")).one()
        assert zhang.community == "张家口市/张北县/花园街道/幸福社区"
        assert sorted(zhang.categories) == ["advanced_age", "living_alone"]
        assert [(c.position, c.name, c.relation) for c in zhang.contacts] == [
            (1, "李明", "family"),
            (2, "王大妈", "neighbour"),
        ]
        door = session.get(DeviceRow, "d-001")
        assert door is not None
        assert (door.elder_id, door.zigbee_name) == (zhang.id, "zb-door-17")
        pendants = session.scalars(select(DeviceRow).where(DeviceRow.elder_id == wang.id)).all()
        assert sorted(d.id for d in pendants) == ["p-002", "p-003"]
        orphan = session.get(DeviceRow, "x-001")
        assert orphan is not None
        assert orphan.elder_id is None


def test_reimport_updates_instead_of_duplicating(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        import_csv(session, FILE.encode())
    with sessions.begin() as session:
        again = import_csv(session, FILE.encode())
    assert (again.elders_created, again.devices_created, again.contacts_added) == (0, 0, 0)
    assert (again.elders_updated, again.devices_updated) == (0, 0)
    moved = FILE.replace("花园街3号", "新华路8号").replace("p-003,sos-pendant", "p-003,pull-cord")
    with sessions.begin() as session:
        changed = import_csv(session, moved.encode())
    assert (changed.elders_updated, changed.devices_updated) == (1, 1)
    with sessions() as session:
        assert (count(session, ElderRow), count(session, DeviceRow)) == (2, 5)
        assert count(session, ContactRow) == 2
        zhang = session.scalars(select(ElderRow).where(ElderRow.external_id == "E17")).one()
        assert zhang.address == "新华路8号"


def test_a_zigbee_name_held_by_another_device_is_a_row_error(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        import_csv(session, FILE.encode())
    clash = "device_id,model,zigbee_name\nd-002,door-contact,zb-door-17\nd-003,pir-motion,zb-pir\n"
    with sessions.begin() as session:
        report = import_csv(session, clash.encode())
    assert [(e.line, e.message) for e in report.errors] == [
        (2, "zigbee_name 'zb-door-17' belongs to device d-001")
    ]
    assert report.devices_created == 1


def test_ten_thousand_rows(sessions: sessionmaker[Session]) -> None:
    lines = [
        "device_id,model,elder_id,elder_name,elder_phone,community,categories,contact_name,contact_phone"
    ]
    for i in range(10_000):
        elder = i // 2  # two devices per elder
        lines.append(
            f"dev-{i:05d},sos-pendant,E{elder:05d},老人{elder},138{elder:08d},"
            f"张家口市/张北县/街道{elder % 7}/社区{elder % 50},独居,家属{elder},139{elder:08d}"
        )
    data = ("\n".join(lines) + "\n").encode()
    started = time.perf_counter()
    with sessions.begin() as session:
        report = import_csv(session, data)
    seconds = time.perf_counter() - started
    print(f"\n10,000-row import: {seconds:.2f} s")  # a figure for the record, not a limit
    assert report.errors == []
    assert (report.rows, report.elders_created, report.devices_created) == (10_000, 5_000, 10_000)
    assert report.contacts_added == 5_000


# How a community worker types it: relations in Chinese family terms and English, dates as
# Excel shows them, categories separated by 、, now and then a word anxin does not know.
TYPED_RELATIONS = ("儿子", "女儿", "儿媳", "son", "老伴", "邻居", "网格员", "daughter", "表舅")
TYPED_DATES = ("2026/3/1", "2026-03-01", "2026年3月1日", "2026.3.1", "上个月")


def typed_csv(rows: int) -> bytes:
    lines = [
        "device_id,model,elder_id,elder_name,elder_phone,address,community,categories,"
        "contact_name,contact_phone,contact_relation,install_date"
    ]
    for i in range(rows):
        relation = TYPED_RELATIONS[i % len(TYPED_RELATIONS)]
        lines.append(
            f"dev-{i:05d},sos-pendant,E{i:05d},老人{i},138{i:08d},花园街{i}号,"
            f"张家口市/张北县/花园街道/幸福社区,独居、高龄,家属{i},139{i:08d},{relation},"
            f"{TYPED_DATES[i % len(TYPED_DATES)]}"
        )
    return ("\n".join(lines) + "\n").encode()


def test_a_thousand_rows_typed_as_people_type_them_are_all_kept(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        report = import_csv(session, typed_csv(1_000))
    warned = {w.line for w in report.warnings}
    print(
        f"\n1,000 typed rows: {report.rows} kept, {len(report.errors)} refused, "
        f"{len(report.warnings)} warnings on {len(warned)} rows"
    )
    assert report.errors == []
    assert (report.rows, report.elders_created, report.devices_created) == (1_000, 1_000, 1_000)
    assert report.contacts_added == 1_000
    # 表舅 (one row in nine) and 上个月 (one in five): each row says what it lost.
    unknown = [w for w in report.warnings if "表舅" in w.message]
    undated = [w for w in report.warnings if "上个月" in w.message]
    assert (len(unknown), len(undated)) == (111, 200)
    assert len(report.warnings) == 311
    with sessions() as session:
        stored = {
            (c.relation, c.label)
            for c in session.scalars(select(ContactRow).where(ContactRow.position == 1))
        }
        device = session.get(DeviceRow, "dev-00000")
        assert device is not None
        assert device.install_date is not None
    assert stored == {
        ("family", "儿子"),
        ("family", "女儿"),
        ("family", "儿媳"),
        ("family", "son"),
        ("family", "老伴"),
        ("neighbour", "邻居"),
        ("community_worker", "网格员"),
        ("family", "daughter"),
        ("other", "表舅"),
    }
