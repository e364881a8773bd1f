"""The dark scheme's style: Fusion, with check boxes and radio buttons outlined in a visible colour.

Its own module because QStyle's enumerations cost ~5 ms to load: the light scheme never needs them.
"""
from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QPainter, QPalette, QPen
from PySide6.QtWidgets import QProxyStyle, QStyle, QStyleOption, QWidget

_Role = QPalette.ColorRole
_Group = QPalette.ColorGroup


class VisibleIndicators(QProxyStyle):
    """Fusion, with check boxes and radio buttons outlined in the palette's Mid colour (not window.darker())."""

    def drawPrimitive(self, element: QStyle.PrimitiveElement, option: QStyleOption,  # noqa: N802 (Qt's name)
                      painter: QPainter, widget: QWidget | None = None) -> None:
        super().drawPrimitive(element, option, painter, widget)
        if element not in (QStyle.PrimitiveElement.PE_IndicatorCheckBox,
                           QStyle.PrimitiveElement.PE_IndicatorRadioButton):
            return
        enabled = bool(option.state & QStyle.StateFlag.State_Enabled)
        group = _Group.Active if enabled else _Group.Disabled
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(option.palette.color(group, _Role.Mid), 1.2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        rect = QRect(option.rect).adjusted(1, 1, -1, -1)
        if element == QStyle.PrimitiveElement.PE_IndicatorRadioButton:
            painter.drawEllipse(rect)
        else:
            painter.drawRoundedRect(rect, 2, 2)
        painter.restore()
