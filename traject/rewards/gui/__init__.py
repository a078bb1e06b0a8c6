"""GUI rewards: BTL-UI (format, blink, link) and region consistency (GUI-RC / GUI-RCPO)."""

from traject.rewards.gui.btl import BTLConfig, BTLReward, BTLScore, BTLTarget, btl_score
from traject.rewards.gui.region_consistency import (RegionConsistency, RegionConsistencyConfig, VoteGrid,
                                                    consistency_rewards)

__all__ = ["BTLConfig", "BTLReward", "BTLScore", "BTLTarget", "RegionConsistency", "RegionConsistencyConfig",
           "VoteGrid", "btl_score", "consistency_rewards"]
