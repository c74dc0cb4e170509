"""Mini-model adaptation of pretrained masked language models to new languages (Marchisio et al., 2023)."""
