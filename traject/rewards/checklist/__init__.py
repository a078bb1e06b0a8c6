"""CM2 checklist rewards: items, the judge's prompt and answer, the scorer."""

from traject.rewards.checklist.items import Checklist, ChecklistItem, Evidence, FocusOn, TurnChecklist
from traject.rewards.checklist.prompts import ItemVerdict
from traject.rewards.checklist.scorer import ChecklistConfig, ChecklistReward, TurnCheck, count_items

__all__ = ["Checklist", "ChecklistConfig", "ChecklistItem", "ChecklistReward", "Evidence", "FocusOn",
           "ItemVerdict", "TurnCheck", "TurnChecklist", "count_items"]
