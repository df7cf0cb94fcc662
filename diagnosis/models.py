# Studies, images, AI results and reviews arrive with the diagnosis issue.
