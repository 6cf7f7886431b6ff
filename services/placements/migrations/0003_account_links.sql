-- Who a signed-in person acts for, when their token does not say it (shared/auth.py, domain/policy.py).

-- A student's account (the token's pseudonymous `sub`) and their student record, linked on the
-- first sign-in whose verified e-mail is the school e-mail the coordinator registered: one
-- account per student and one student per account. Erasure deletes the link.
CREATE TABLE student_accounts (
    subject     text PRIMARY KEY,
    student_id  text NOT NULL UNIQUE,
    linked_at   timestamptz NOT NULL DEFAULT now()
);

-- Company staff: an account acts for one company (many accounts may act for one company).
CREATE TABLE company_accounts (
    subject     text PRIMARY KEY,
    company_id  text NOT NULL,
    linked_at   timestamptz NOT NULL DEFAULT now()
);

-- A coordinator's invitation of a company's staff member, by e-mail (kept lower-case): the
-- first sign-in with that verified e-mail links the account to the company and uses it up.
CREATE TABLE company_invitations (
    email       text NOT NULL,
    company_id  text NOT NULL,
    invited_at  timestamptz NOT NULL DEFAULT now(),
    used_by     text,
    used_at     timestamptz,
    PRIMARY KEY (email, company_id)
);

CREATE INDEX students_email ON students (lower(email)) WHERE withdrawn_at IS NULL;
