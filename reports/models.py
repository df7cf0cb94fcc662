# PDF reports and structured exports arrive with the reports issue.
