"""The README, the demo and the documentation's examples keep their promises."""
