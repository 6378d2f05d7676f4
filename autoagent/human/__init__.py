"""The human in the loop: decisions, the policy, requests answered from any channel,
notifications."""
