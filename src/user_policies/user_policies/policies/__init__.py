"""Policy kinds (one module each, registered in :data:`user_policies.policies.base.POLICIES`)."""
