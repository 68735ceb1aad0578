"""The demo's registry: five elders, obviously fictional (演示 in every address, phones of the
138-0000 block nobody is given), with what a dispatcher needs on the first alert — who, where,
whom to call in what order, the medical and key-safe notes — bound to the simulated devices.

Safe to run again: elders are found by their external id (DEMO-01 …) and set back as here."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from devices.elders import ContactRow, ElderRow
from devices.registry import DeviceRow, register_device

COMMUNITY = "演示市/安心区/幸福街道/演示社区"


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoContact:
    name: str
    phone: str
    relation: str  # family | neighbour | community_worker | other
    label: str  # as the community office wrote it


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoDevice:
    device_id: str
    model: str
    room: str


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoElder:
    external_id: str
    name: str
    phone: str
    address: str
    categories: tuple[str, ...]
    medical_notes: str
    key_safe_note: str
    location: tuple[float, float]
    contacts: tuple[DemoContact, ...]
    devices: tuple[DemoDevice, ...]


def _phone(n: int) -> str:
    return f"1380000{n:04d}"


def _contact(name: str, n: int, relation: str, label: str) -> DemoContact:
    return DemoContact(name=name, phone=_phone(n), relation=relation, label=label)


DEMO_ELDERS = (
    DemoElder(
        external_id="DEMO-01",
        name="张秀英（演示）",
        phone=_phone(101),
        address="演示路1号院3号楼2单元101室",
        categories=("living_alone", "advanced_age"),
        medical_notes="高血压、糖尿病，服用二甲双胍；左膝关节置换，行动慢。",
        key_safe_note="门口密码钥匙盒，密码 2468（演示）。",
        location=(41.150, 114.700),
        contacts=(
            _contact("李明（演示）", 201, "family", "儿子"),
            _contact("王大妈（演示）", 202, "neighbour", "邻居"),
            _contact("社区小陈（演示）", 203, "community_worker", "网格员"),
        ),
        devices=(
            DemoDevice(device_id="demo-pendant-01", model="sos-pendant", room="卧室"),
            # One home with sensors: movement for the welfare rules, and a smoke alarm.
            DemoDevice(device_id="demo-motion-01", model="pir-motion", room="客厅"),
            DemoDevice(device_id="demo-smoke-01", model="smoke-detector", room="厨房"),
        ),
    ),
    DemoElder(
        external_id="DEMO-02",
        name="刘建国（演示）",
        phone=_phone(102),
        address="演示路1号院5号楼1单元302室",
        categories=("empty_nest",),
        medical_notes="冠心病，随身带硝酸甘油。",
        key_safe_note="钥匙在对门邻居赵阿姨家（演示）。",
        location=(41.151, 114.701),
        contacts=(
            _contact("刘芳（演示）", 204, "family", "女儿"),
            _contact("赵阿姨（演示）", 205, "neighbour", "对门"),
        ),
        devices=(DemoDevice(device_id="demo-pendant-02", model="sos-pendant", room="客厅"),),
    ),
    DemoElder(
        external_id="DEMO-03",
        name="陈桂兰（演示）",
        phone=_phone(103),
        address="演示路2号院1号楼3单元201室",
        categories=("disabled", "living_alone"),
        medical_notes="脑卒中后右侧偏瘫，需轮椅；对青霉素过敏。",
        key_safe_note="无备用钥匙：需社区或物业开门（演示）。",
        location=(41.152, 114.699),
        contacts=(
            _contact("陈伟（演示）", 206, "family", "侄子"),
            _contact("社区小陈（演示）", 203, "community_worker", "网格员"),
        ),
        devices=(DemoDevice(device_id="demo-pullcord-01", model="pull-cord", room="卫生间"),),
    ),
    DemoElder(
        external_id="DEMO-04",
        name="赵德明（演示）",
        phone=_phone(104),
        address="演示路3号院2号楼1单元501室",
        categories=("advanced_age",),
        medical_notes="轻度认知障碍，偶有迷路。",
        key_safe_note="老伴在家时可开门（演示）。",
        location=(41.149, 114.702),
        contacts=(
            _contact("孙淑珍（演示）", 207, "family", "老伴"),
            _contact("赵磊（演示）", 208, "family", "儿子"),
        ),
        devices=(DemoDevice(device_id="demo-phone-01", model="4g-elder-phone", room="客厅"),),
    ),
    DemoElder(
        external_id="DEMO-05",
        name="王玉珍（演示）",
        phone=_phone(105),
        address="演示路3号院4号楼2单元102室",
        categories=("extreme_poverty", "living_alone"),
        medical_notes="慢阻肺，家中有制氧机。",
        key_safe_note="钥匙放在社区服务站（演示）。",
        location=(41.148, 114.698),
        contacts=(
            _contact("社区小陈（演示）", 203, "community_worker", "网格员"),
            _contact("周大姐（演示）", 209, "other", "护工"),
        ),
        devices=(DemoDevice(device_id="demo-button-01", model="sos-button", room="卧室"),),
    ),
)  # fmt: skip


def demo_devices() -> list[DemoDevice]:
    return [device for elder in DEMO_ELDERS for device in elder.devices]


def register_demo(session: Session) -> None:
    """The elders, their contacts in calling order and their devices (set back as here)."""
    ids = [e.external_id for e in DEMO_ELDERS]
    known = {
        row.external_id: row
        for row in session.scalars(select(ElderRow).where(ElderRow.external_id.in_(ids)))
    }
    for demo in DEMO_ELDERS:
        elder = known.get(demo.external_id) or ElderRow(external_id=demo.external_id)
        elder.name, elder.phone, elder.address = demo.name, demo.phone, demo.address
        elder.community, elder.categories = COMMUNITY, list(demo.categories)
        elder.medical_notes, elder.key_safe_note = demo.medical_notes, demo.key_safe_note
        elder.location = {"lat": demo.location[0], "lon": demo.location[1]}
        elder.contacts = [
            ContactRow(
                position=position, name=c.name, phone=c.phone, relation=c.relation, label=c.label
            )
            for position, c in enumerate(demo.contacts, start=1)
        ]
        session.add(elder)
        session.flush()
        for device in demo.devices:
            register_device(session, device.device_id, device.model, elder.id)
            row = session.get(DeviceRow, device.device_id)
            if row is not None:
                row.room = device.room
