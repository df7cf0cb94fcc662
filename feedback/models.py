# Feedback cases, retraining jobs and model versions arrive with the feedback issue.
