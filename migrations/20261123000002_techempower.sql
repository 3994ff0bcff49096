-- TechEmpower Framework Benchmarks tables, so /db, /queries, /updates,
-- /cached-queries and /fortunes follow the published test rules.
create table world (
    id           integer primary key,
    randomnumber integer not null default 0
);

create table fortune (
    id      integer primary key,
    message text not null
);
