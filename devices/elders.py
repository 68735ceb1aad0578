"""The people served: elders, where they live, who they are, and whom to call for them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ColumnElement, ForeignKey, Integer, String, Text, func, or_
from sqlalchemy.orm import Mapped, mapped_column, relationship

from devices.sql import Base, UtcDateTime


class ElderCategory(StrEnum):
    """The groups China's elderly-care services single out (with their Chinese names)."""

    LIVING_ALONE = "living_alone"  # 独居
    EMPTY_NEST = "empty_nest"  # 空巢
    ADVANCED_AGE = "advanced_age"  # 高龄
    EXTREME_POVERTY = "extreme_poverty"  # 特困
    DISABLED = "disabled"  # 失能 / 重残
    LEFT_BEHIND = "left_behind"  # 留守


CATEGORY_NAMES_ZH: dict[ElderCategory, tuple[str, ...]] = {
    ElderCategory.LIVING_ALONE: ("独居",),
    ElderCategory.EMPTY_NEST: ("空巢",),
    ElderCategory.ADVANCED_AGE: ("高龄",),
    ElderCategory.EXTREME_POVERTY: ("特困",),
    ElderCategory.DISABLED: ("失能", "重残"),
    ElderCategory.LEFT_BEHIND: ("留守",),
}
_BY_NAME = {c.value: c for c in ElderCategory} | {
    zh: category for category, names in CATEGORY_NAMES_ZH.items() for zh in names
}


def parse_category(text: str) -> ElderCategory:
    """``living_alone`` or ``独居`` → ElderCategory.LIVING_ALONE."""
    try:
        return _BY_NAME[text.strip()]
    except KeyError:
        raise ValueError(f"unknown category {text.strip()!r}") from None


class ContactRelation(StrEnum):
    FAMILY = "family"
    NEIGHBOUR = "neighbour"
    COMMUNITY_WORKER = "community_worker"
    OTHER = "other"


def _words(text: str) -> list[str]:
    return text.split()


# How people write a relation in a registry spreadsheet: Chinese family terms and English
# words, each read as one of the relations above (the word itself is kept as the contact's
# ``label``: 儿子 says more to a dispatcher than "family").
_FAMILY_WORDS = _words(
    "家属 家人 亲属 亲人 亲戚 子女 儿女 儿子 女儿 长子 次子 长女 次女 大儿子 二儿子 小儿子 大女儿"
    " 二女儿 小女儿 儿媳 儿媳妇 媳妇 女婿 老伴 老伴儿 配偶 爱人 丈夫 妻子 老公 老婆 先生 太太"
    " 孙子 孙女 外孙 外孙女 孙媳 孙女婿 侄子 侄女 外甥 外甥女 兄弟 姐妹 哥哥 弟弟 姐姐 妹妹"
    " 嫂子 弟媳 姐夫 妹夫 表哥 表弟 表姐 表妹 堂哥 堂弟 堂姐 堂妹 父亲 母亲 继子 继女 养子 养女"
    " 干儿子 干女儿 亲家"
    " family relative relatives kin child children son daughter son_in_law daughter_in_law"
    " spouse wife husband partner grandson granddaughter grandchild grandchildren nephew niece"
    " brother sister sibling cousin stepson stepdaughter father mother"
)
_NEIGHBOUR_WORDS = _words("邻居 邻里 隔壁 对门 neighbour neighbor neighbours neighbors")
_COMMUNITY_WORDS = _words(
    "社区工作者 社区 社工 网格员 网格长 楼长 居委会 村委会 村干部 社区干部 养老顾问 助老员"
    " community_worker social_worker grid_worker"
)
_OTHER_WORDS = _words(
    "其他 其它 朋友 好友 老朋友 同事 战友 同学 保姆 护工 家政 志愿者 房东"
    " other friend friends colleague carer caregiver caretaker nanny volunteer landlord"
)
_RELATIONS = {
    word: relation
    for relation, words in (
        (ContactRelation.FAMILY, _FAMILY_WORDS),
        (ContactRelation.NEIGHBOUR, _NEIGHBOUR_WORDS),
        (ContactRelation.COMMUNITY_WORKER, _COMMUNITY_WORDS),
        (ContactRelation.OTHER, _OTHER_WORDS),
    )
    for word in words
}


def relation_of(text: str) -> ContactRelation | None:
    """``儿子``, ``son``, ``Daughter-in-law``, ``老伴`` → family, ``邻居`` → neighbour,
    ``网格员`` → community_worker, ``朋友`` → other; None for a word not known (the caller
    keeps it as written, as ``other``). A note in brackets is ignored: ``儿子（长子）``."""
    key = re.sub(r"[（(].*?[)）]", "", text).strip().lower()
    return _RELATIONS.get(re.sub(r"[\s\-_]+", "_", key))


def parse_relation(text: str) -> ContactRelation:
    """As :func:`relation_of`, for callers that refuse an unknown word."""
    relation = relation_of(text)
    if relation is None:
        raise ValueError(f"unknown contact relation {text.strip()!r}")
    return relation


MAX_TIERS = 4  # city / district / street / community


def parse_community(text: str) -> str:
    """``张家口市/张北县/花园街道/幸福社区`` → the same, tidied; 1 to 4 non-empty tiers."""
    tiers = [tier.strip() for tier in text.split("/")]
    if not 1 <= len(tiers) <= MAX_TIERS or not all(tiers):
        raise ValueError(
            f"community {text!r} needs 1 to 4 '/'-separated tiers: city/district/street/community"
        )
    return "/".join(tiers)


def in_scope(community: str | None, scope: str) -> bool:
    """Does a user whose scope is ``scope`` (a tier path, "" for all) see this community?"""
    if not scope:
        return True
    if community is None:
        return False
    return community == scope or community.startswith(scope + "/")


def within_community(prefix: str, column: Any = None) -> ColumnElement[bool]:
    """SQL: the elder (or ``column``'s community) is in the tier path ``prefix`` or below it.

    Compared as exact text, not with LIKE: a ``_`` or ``%`` in a scope is no wildcard, and
    SQLite's LIKE would ignore case where PostgreSQL's does not.
    """
    below = prefix + "/"
    community = ElderRow.community if column is None else column
    return or_(community == prefix, func.substr(community, 1, len(below)) == below)


class ElderRow(Base):
    __tablename__ = "elders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The community office's own id for the person (the CSV's elder_id), if it has one.
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    address: Mapped[str | None] = mapped_column(String(255))
    community: Mapped[str | None] = mapped_column(String(255), index=True)
    location: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    medical_notes: Mapped[str | None] = mapped_column(Text)
    key_safe_note: Mapped[str | None] = mapped_column(Text)
    # The elder's own welfare settings (check-in opt-in, wandering, times, inactivity hours),
    # over the rules file's defaults for their categories: docs/alert-rules.md.
    welfare: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=lambda: datetime.now(UTC))
    # Indexed: the scheduler follows edits (welfare settings) by it.
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime,
        default=lambda: datetime.now(UTC),
        onupdate=lambda: datetime.now(UTC),
        index=True,
    )

    contacts: Mapped[list[ContactRow]] = relationship(
        back_populates="elder",
        order_by="ContactRow.position",
        cascade="all, delete-orphan",
        lazy="selectin",
    )


def welfare_key(value: dict[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """An elder's ``welfare`` JSON as a hashable key (its values are scalars)."""
    if not value:
        return ()
    return tuple(sorted((k, v) for k, v in value.items() if isinstance(v, str | int | float)))


class ContactRow(Base):
    """Someone to call for an elder; ``position`` is the calling order, 1 first."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    elder_id: Mapped[int] = mapped_column(ForeignKey("elders.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(32))
    relation: Mapped[str] = mapped_column(String(32))
    # The relation as written (儿子, 老伴, son), when the registry said more than ``relation``.
    label: Mapped[str | None] = mapped_column(String(32))

    elder: Mapped[ElderRow] = relationship(back_populates="contacts")
