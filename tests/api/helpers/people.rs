//! The sample people: each defined once, as a [`Person`], with the staff
//! files that bring them into a test's service.

/// A day, month and year of birth as typed in the recovery form's three boxes.
pub type DateOfBirth<'a> = (&'a str, &'a str, &'a str);

/// One sample person, with one account at one employer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Person {
    /// The username the import gives the account.
    pub username: &'static str,
    /// The first name in the staff file.
    pub first_name: &'static str,
    /// The last name in the staff file.
    pub last_name: &'static str,
    /// The date of birth as the person types it.
    pub date_of_birth: DateOfBirth<'static>,
    /// The address as the person types it (the staff file may hold it in
    /// another case).
    pub email: &'static str,
    /// The employer's name as the staff file gives it.
    pub employer: &'static str,
    /// Empty for none.
    pub employee_number: &'static str,
}

/// The password the sample people are given when a test needs one set.
pub const GOOD_PASSWORD: &str = "kettle violin marmalade";

/// The employer of every sample person but Jane's second account.
pub const DEMO_HOSPITAL: &str = "999 Demo Hospital NHS Trust";

/// Amir Khan, staff at the demo hospital, in [`STAFF`].
pub const AMIR: Person = Person {
    username: "999AKHAN01",
    first_name: "Amir",
    last_name: "Khan",
    date_of_birth: ("2", "7", "1990"),
    email: "amir.khan@nhs.net",
    employer: DEMO_HOSPITAL,
    employee_number: "D2",
};

/// Jane Smith's account at the demo hospital, in [`STAFF`]; she has a second
/// one, 432JSMITH01, at a community trust, with the same address and date
/// of birth.
pub const JANE: Person = Person {
    username: "999JSMITH01",
    first_name: "Jane",
    last_name: "Smith",
    date_of_birth: ("14", "3", "1985"),
    email: "jane.smith@nhs.net",
    employer: DEMO_HOSPITAL,
    employee_number: "D1",
};

/// Jane's two accounts and Amir's. The rows differ on purpose in the case of
/// Jane's address and in the format of her date of birth: one person is
/// still found at both employers.
pub const STAFF: &str = "employer,username,first_name,last_name,date_of_birth,email,employee_number\n\
999 Demo Hospital NHS Trust,,Jane,Smith,1985-03-14,Jane.Smith@nhs.net,D1\n\
432 Community Health NHS Trust,,Jane,Smith,14/03/1985,jane.smith@nhs.net,C1\n\
999 Demo Hospital NHS Trust,,Amir,Khan,1990-07-02,amir.khan@nhs.net,D2\n";

/// Priya Patel, who becomes an administrator.
pub const PRIYA: Person = Person {
    username: "999PPATEL01",
    first_name: "Priya",
    last_name: "Patel",
    date_of_birth: ("21", "5", "1982"),
    email: "priya.patel@nhs.net",
    employer: DEMO_HOSPITAL,
    employee_number: "D9",
};

/// Bea Jones, whose account is locked for the console's unlock.
pub const BEA: Person = Person {
    username: "999BJONES01",
    first_name: "Bea",
    last_name: "Jones",
    date_of_birth: ("1", "1", "1980"),
    email: "bea.jones@nhs.net",
    employer: DEMO_HOSPITAL,
    employee_number: "D3",
};

/// Carl Brown, who resets his password.
pub const CARL: Person = Person {
    username: "999CBROWN01",
    first_name: "Carl",
    last_name: "Brown",
    date_of_birth: ("5", "5", "1975"),
    email: "carl.brown@nhs.net",
    employer: DEMO_HOSPITAL,
    employee_number: "D4",
};

/// Lena Locke, whose account is locked.
pub const LENA: Person = Person {
    username: "999LLOCKE01",
    first_name: "Lena",
    last_name: "Locke",
    date_of_birth: ("6", "5", "1980"),
    email: "lena.locke@nhs.net",
    employer: DEMO_HOSPITAL,
    employee_number: "",
};

/// Dora Dent, whose only account is disabled.
pub const DORA: Person = Person {
    username: "999DDENT01",
    first_name: "Dora",
    last_name: "Dent",
    date_of_birth: ("10", "9", "1975"),
    email: "dora.dent@nhs.net",
    employer: DEMO_HOSPITAL,
    employee_number: "",
};

/// Sam Stone, a plain match.
pub const SAM: Person = Person {
    username: "999SSTONE01",
    first_name: "Sam",
    last_name: "Stone",
    date_of_birth: ("20", "1", "1970"),
    email: "sam.stone@nhs.net",
    employer: DEMO_HOSPITAL,
    employee_number: "",
};

/// Nia Okafor, whose staff file row names her username.
pub const NIA: Person = Person {
    username: "999NEWBIE01",
    first_name: "Nia",
    last_name: "Okafor",
    date_of_birth: ("6", "5", "1992"),
    email: "nia.okafor@nhs.net",
    employer: DEMO_HOSPITAL,
    employee_number: "D9",
};

/// The staff file's header, every column the import reads.
const STAFF_HEADER: &str =
    "employer,username,first_name,last_name,date_of_birth,email,employee_number\n";

impl Person {
    /// The person's row in a staff file (the username left for the import
    /// to make, the date written as ISO 8601).
    pub fn staff_row(&self) -> String {
        let (day, month, year) = self.date_of_birth;
        let n = |s: &str| s.parse::<u32>().expect("a number");
        format!(
            "{},,{},{},{year}-{:02}-{:02},{},{}\n",
            self.employer,
            self.first_name,
            self.last_name,
            n(month),
            n(day),
            self.email,
            self.employee_number
        )
    }

    /// The recovery form as the person fills it in, the optional username
    /// left blank.
    pub fn recovery(&self) -> Recovery<'static> {
        Recovery {
            email: self.email,
            date_of_birth: self.date_of_birth,
            username: "",
        }
    }

    /// The recovery form's fields as the person fills them in (no username).
    pub fn recovery_fields(&self) -> [(&'static str, &'static str); 4] {
        [
            ("email", self.email),
            ("dob-day", self.date_of_birth.0),
            ("dob-month", self.date_of_birth.1),
            ("dob-year", self.date_of_birth.2),
        ]
    }
}

/// A staff file holding `people`.
pub fn staff_file(people: &[&Person]) -> String {
    let mut file = STAFF_HEADER.to_owned();
    for person in people {
        file.push_str(&person.staff_row());
    }
    file
}

/// What is typed in the recovery form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery<'a> {
    /// The address typed.
    pub email: &'a str,
    /// The date of birth typed.
    pub date_of_birth: DateOfBirth<'a>,
    /// The optional username; empty when left blank.
    pub username: &'a str,
}

impl<'a> Recovery<'a> {
    /// A form with this address and date of birth, no username.
    pub fn new(email: &'a str, date_of_birth: DateOfBirth<'a>) -> Self {
        Self {
            email,
            date_of_birth,
            username: "",
        }
    }

    /// The same form with the address typed as `email`.
    pub fn typed_as(self, email: &'a str) -> Self {
        Self { email, ..self }
    }

    /// The same form with the optional username filled in.
    pub fn with_username(self, username: &'a str) -> Self {
        Self { username, ..self }
    }

    /// The form's fields as the browser sends them.
    pub fn fields(&self) -> [(&'a str, &'a str); 5] {
        [
            ("email", self.email),
            ("dob-day", self.date_of_birth.0),
            ("dob-month", self.date_of_birth.1),
            ("dob-year", self.date_of_birth.2),
            ("username", self.username),
        ]
    }
}
