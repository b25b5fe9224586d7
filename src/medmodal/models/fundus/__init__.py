"""Fundus (retinal) networks: DeepLabv3+ / U-Net vessel segmenters (:mod:`.vessel_net`)."""

from medmodal.models.fundus.vessel_net import VesselNet, VesselNetConfig

__all__ = ["VesselNet", "VesselNetConfig"]
